"""Every async test runs on asyncio and on trio, through anyio's pytest plugin."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The event loop under test."""
    backend: str = request.param
    return backend
