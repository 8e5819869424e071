"""How the reactor's thread wakes a task awaiting a run, on any anyio backend.

The reactor must never block. Each awaiting task gets a waker that any thread pokes
without blocking: on asyncio, ``loop.call_soon_threadsafe`` and on trio
``TrioToken.run_sync_soon`` (each loop's own way in from other threads, one write to its
own wake-up pipe) resolve what the task awaits; on any other backend, a byte written into
a socket pair the task awaits with anyio's readability wait. A poke that comes after the
loop closed is dropped. No thread waits on the task's behalf and nobody polls the reactor.
The native wakers cost a few microseconds per wait where anyio's cancel scope and a
readability wait cost tens: at a check every 4 ms, that is the waiting CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from mirakuru.adapter.run.run import Run

__all__ = ["AsyncRunWakeups", "AsyncWakeups", "IdleWakeups", "Waker", "make_waker"]

# anyio >= 4.7 waits on any descriptor; earlier 4.x only on sockets (which a pair is).
_wait_readable = getattr(anyio, "wait_readable", None) or anyio.wait_socket_readable


class Waker(Protocol):
    """One task's wake-up line: :meth:`poke` from any thread, :meth:`wait` on the loop."""

    def poke(self) -> None:
        """Wake the waiting task (or the next wait); never blocks, never raises."""
        ...

    def drain(self) -> None:
        """Forget the pokes so far (on the loop)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Until a poke (one already pending counts) or ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Free what the waker holds; later pokes do nothing."""
        ...


def make_waker() -> Waker:
    """The cheapest waker for the running loop (call on the loop's thread)."""
    try:
        return _CallSoonWaker(asyncio.get_running_loop().call_soon_threadsafe)
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return _CallSoonWaker(token.run_sync_soon)
    return SocketWaker()


class _CallSoonWaker:
    """A waker through the loop's own thread-safe "call soon"; pokes coalesce."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], Any]) -> None:
        self._call_soon = call_soon
        self._event = anyio.Event()
        self._scheduled = False  # a wake-up is on its way to the loop
        self._closed = False

    def poke(self) -> None:
        if self._closed or self._scheduled:
            return
        self._scheduled = True
        try:
            self._call_soon(self._wake)
        except Exception:  # the loop is closed or its run finished: nobody waits
            self._closed = True

    def _wake(self) -> None:
        self._scheduled = False
        self._event.set()

    def drain(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float) -> None:
        if self._event.is_set():
            return
        with anyio.move_on_after(None if math.isinf(timeout) else timeout):
            await self._event.wait()

    def close(self) -> None:
        self._closed = True


class SocketWaker:
    """A waker through a socket pair, for loops without a thread-safe "call soon"."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        # A poke racing close() must not write to a descriptor number already reused.
        self._lock = threading.Lock()
        self._closed = False

    def poke(self) -> None:
        """Wake the waiting task (or the next wait); never blocks, never raises."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                self._write.send(b"\0")

    def drain(self) -> None:
        """Forget the pokes so far."""
        with contextlib.suppress(OSError):
            while self._read.recv(4096):
                pass

    async def wait(self, timeout: float) -> None:
        """Until a poke (one already pending counts) or ``timeout`` seconds."""
        with anyio.move_on_after(None if math.isinf(timeout) else timeout):
            await _wait_readable(self._read)

    def close(self) -> None:
        """Free both ends; later pokes do nothing."""
        with self._lock:
            self._closed = True
            self._read.close()
            self._write.close()


class AsyncWakeups:
    """What the async driver awaits between checks."""

    async def wait(self, timeout: float) -> bool:
        """Until an event or ``timeout`` seconds; True if a hint fired."""
        await anyio.sleep(timeout)
        return False

    def close(self) -> None:
        """Free what the wake-ups hold."""


IdleWakeups = AsyncWakeups  # nothing to watch (a stand-in process): the time alone


class AsyncRunWakeups(AsyncWakeups):
    """Wakes when the reactor served one of the run's descriptors (or a stop began)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._waker = make_waker()
        run.subscribe(self._waker.poke)  # before reading the marks: no event falls between
        self._seen = run.marks()

    async def wait(self, timeout: float) -> bool:
        run = self._run
        self._waker.drain()
        if run.marks() == self._seen and not run.stopping:
            await self._waker.wait(timeout)
        marks = run.marks()
        hinted = marks[1] != self._seen[1]
        self._seen = marks
        return hinted

    def close(self) -> None:
        self._run.unsubscribe(self._waker.poke)
        self._waker.close()
