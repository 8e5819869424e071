import sys

import pytest_asyncio

from mirakuru import HTTPExecutor
from mirakuru.ports import free_port


# One server for the whole session, started and stopped on the session's event loop.
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def web():
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    async with HTTPExecutor(command, url=f"http://127.0.0.1:{port}/", timeout=30) as server:
        yield server
