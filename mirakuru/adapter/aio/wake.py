"""How the reactor's thread wakes a task awaiting a run, on any anyio backend.

The reactor must never block and must never touch an event loop's objects (the loop may be
busy, or closed by the time a late event comes). So each awaiting task gets a socket pair:
the reactor (or a thread calling ``stop()``) writes one byte without blocking, and the task
awaits the other end with anyio's readability wait, which both asyncio and trio serve from
their own selector. No thread waits on the task's behalf and nobody polls the reactor.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from mirakuru.adapter.run.run import Run

__all__ = ["AsyncRunWakeups", "AsyncWakeups", "IdleWakeups", "Waker"]

# anyio >= 4.7 waits on any descriptor; earlier 4.x only on sockets (which a pair is).
_wait_readable = getattr(anyio, "wait_readable", None) or anyio.wait_socket_readable


class Waker:
    """One task's wake-up line: :meth:`poke` from any thread, :meth:`wait` on the loop."""

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
        self._waker = Waker()
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
