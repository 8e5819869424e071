"""One spawn-to-reap of an executor's process and every resource that belongs to it.

A :class:`Run` owns the Popen, its pidfd, the output pump, the sd_notify socket and the
wake-up used to cut a waiting ``start()`` short; :meth:`Run.close` frees them all (the
spools stay readable until :meth:`Run.release`). Once the process is ready, the reactor
watches its exit and calls ``on_exit`` the moment it happens.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import weakref
from collections.abc import Callable
from typing import Any

from mirakuru.adapter.notify import NotifySocket
from mirakuru.adapter.process import ExitWatch, open_pidfd
from mirakuru.adapter.pump import DEFAULT_LIMIT, OutputPump
from mirakuru.adapter.reactor import reactor
from mirakuru.adapter.sources import EventSource

__all__ = ["Run", "WakeUp"]

#: The real class, kept before a test can patch ``subprocess.Popen`` with a stand-in.
_REAL_POPEN = subprocess.Popen


class WakeUp:
    """A descriptor another thread makes readable to wake a waiter (say, stop() during start)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self.woken = False

    def fileno(self) -> int:
        return self._read

    def on_readable(self) -> bool:
        return False  # stays readable: the check sees why it was woken

    def wake(self) -> None:
        """Make the waiter return from its poll."""
        self.woken = True
        with contextlib.suppress(OSError):
            os.write(self._write, b"x")

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class Run:
    """The resources of one started process, freed together by :meth:`close`."""

    def __init__(
        self,
        process: subprocess.Popen[Any],
        notify: NotifySocket | None = None,
        output_limit: int | None = DEFAULT_LIMIT,
    ) -> None:
        self.process = process
        #: A stand-in for Popen (a test's mock) is driven only through its own methods.
        self.real = isinstance(process, _REAL_POPEN)
        self.pidfd = open_pidfd(process.pid) if self.real else None
        streams: dict[str, int] = {}
        if self.real:
            for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
                if pipe is not None:
                    streams[name] = pipe.fileno()
        self.pump = OutputPump(streams, output_limit)
        self.notify = notify
        #: The text readers handed out by ``output()``, kept until :meth:`release`.
        self.readers: dict[str, io.TextIOWrapper] = {}
        self.stopping = False
        self._wake: WakeUp | None = None
        self._exit_watched = False
        self._closed = False

    # -- waiting ----------------------------------------------------------------------------

    def wake_up(self) -> WakeUp:
        """The waiter's wake-up, made on first use and closed with the notify socket."""
        if self._wake is None:
            self._wake = WakeUp()
        return self._wake

    def wait_sources(self) -> list[EventSource]:
        """What should wake a waiter: exit, output (until the reactor drains it), sd_notify."""
        sources: list[EventSource] = [self.wake_up()]
        if self.pidfd is not None and self.process.returncode is None:
            sources.append(ExitWatch(self.pidfd))
        if not self.pump.background:
            sources.extend(self.pump.sources())
        if self.notify is not None:
            sources.append(self.notify)
        return sources

    def mark_stopping(self) -> None:
        """Another thread stops this run: wake the waiting start() so it gives up."""
        self.stopping = True
        if self._wake is not None:
            self._wake.wake()

    # -- after start-up ---------------------------------------------------------------------

    def hand_over(self, on_exit: Callable[[int], None]) -> None:
        """The process is ready: the reactor drains its output and watches for its exit."""
        self.close_waiting()
        if not self.real:
            return
        self.pump.start_background()
        if self._exit_watched or self.process.returncode is not None:
            return
        self._exit_watched = True

        def exited() -> bool:
            code = self.exit_code()
            if code is None:
                # Not yet (a fallback poll); a readable pidfd with no code: reaped elsewhere.
                return self.pidfd is None and self.process.returncode is None
            on_exit(code)
            return False

        if self.pidfd is not None:
            reactor().add(self.pidfd, exited)
        else:
            reactor().add_poller(self, exited)

    def hand_over_weakly(self, on_exit: Callable[[int], None]) -> None:
        """:meth:`hand_over`, holding the bound method's object weakly.

        The reactor must not keep a dropped executor alive: its finalizer kills the tree.
        """
        method = weakref.WeakMethod(on_exit)

        def exited(code: int) -> None:
            alive = method()
            if alive is not None:
                alive(code)

        self.hand_over(exited)

    def exit_code(self) -> int | None:
        """The exit code if the process has exited, read without reaping it.

        A zombie leader keeps its PID and process group reserved, so teardown can still
        signal the group safely: only stop() and kill() reap.
        """
        if self.process.returncode is not None:
            return int(self.process.returncode)
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            if self.pidfd is not None:
                info = os.waitid(os.P_PIDFD, self.pidfd, flags)
            else:
                info = os.waitid(os.P_PID, self.process.pid, flags)
        except ChildProcessError:
            return None
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def close_waiting(self) -> None:
        """Free what only a waiting start() needs: the notify socket and the wake-up."""
        notify, self.notify = self.notify, None
        if notify is not None:
            notify.close()
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.close()

    def close(self) -> None:
        """Free every descriptor of the run; the spools stay readable."""
        if self._closed:
            return
        self._closed = True
        if self._exit_watched:
            if self.pidfd is not None:
                reactor().remove(self.pidfd)
            else:
                reactor().remove_poller(self)
        self.pump.close()
        self.close_waiting()
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
        if self.real:
            for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # -- output -----------------------------------------------------------------------------

    def reader(self, name: str, position: int = 0) -> io.TextIOWrapper | None:
        """The one text reader of a captured stream (from ``position`` on first use)."""
        reader = self.readers.get(name)
        if reader is None:
            stream = self.pump.streams.get(name)
            if stream is None:
                return None
            reader = self.readers[name] = stream.spool.reader(position)
        return reader

    def drain_tail(self) -> list[str]:
        """The output tail after reading what a dead process left in its pipes."""
        if not self.pump.background:
            for stream in self.pump.sources():
                stream.drain()
        return self.pump.tail()

    def dropped_note(self) -> str | None:
        """A history note about output kept out by ``output_limit``, if any was."""
        dropped = self.pump.dropped()
        if not dropped:
            return None
        counts = ", ".join(f"{name}: {count} bytes" for name, count in dropped.items())
        return f"output beyond output_limit left out ({counts})"

    def release(self) -> None:
        """Free the readers and spools too: a new start begins a new record."""
        for reader in self.readers.values():
            reader.close()
        self.readers = {}
        self.close()
        self.pump.release()
