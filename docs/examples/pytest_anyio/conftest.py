import sys

import pytest

from mirakuru import Executor, probes


# Session-scoped: anyio's plugin then runs every test and fixture on one event loop.
@pytest.fixture(scope="session", params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.fixture(scope="session")
async def service(anyio_backend):
    command = [sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(60)"]
    async with Executor(command, ready=probes.banner("^ready$"), timeout=30) as executor:
        yield executor
