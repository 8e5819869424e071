import pytest

from mirakuru import State

# The tests run on the session's loop too: the one the fixture's server was started on.
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_running(web):
    assert web.state is State.RUNNING


async def test_same_server(web):
    assert web.running()
