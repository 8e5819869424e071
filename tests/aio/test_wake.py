"""The wakers: any thread pokes, the waiting task wakes; a poke after close does nothing."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from mirakuru.adapter.aio.wake import SocketWaker, Waker, make_waker

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["native", "socket"])
def waker(request: pytest.FixtureRequest) -> Waker:
    """The loop's own waker, and the socket-pair fallback."""
    return make_waker() if request.param == "native" else SocketWaker()


async def test_a_poke_from_a_thread_wakes_the_wait(waker: Waker) -> None:
    """A poke from another thread ends a long wait at once."""
    timer = threading.Timer(0.05, waker.poke)
    timer.start()
    began = time.monotonic()
    with anyio.fail_after(5):
        await waker.wait(30)
    assert time.monotonic() - began < 5
    waker.close()


async def test_a_pending_poke_counts_until_drained(waker: Waker) -> None:
    """A poke before the wait ends it at once; drained, the wait runs to its timeout."""
    await anyio.to_thread.run_sync(waker.poke)
    with anyio.fail_after(5):
        await waker.wait(30)
    waker.drain()
    with anyio.move_on_after(5) as scope:
        await waker.wait(0.05)
    assert not scope.cancelled_caught
    waker.close()


async def test_poke_after_close_is_harmless(waker: Waker) -> None:
    """Closing then poking (a late event from the reactor) neither raises nor blocks."""
    waker.close()
    await anyio.to_thread.run_sync(waker.poke)
