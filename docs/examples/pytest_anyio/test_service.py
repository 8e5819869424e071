import pytest

from mirakuru import State

pytestmark = pytest.mark.anyio


async def test_running(service):
    assert service.state is State.RUNNING


async def test_restart(service):
    await service.astop()
    await service.astart()
    assert service.state is State.RUNNING
