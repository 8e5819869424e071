"""One spawn-to-reap of an executor's process and every resource that belongs to it.

A :class:`Run` owns the Popen, its pidfd, the output pump and whatever else a waiter is
woken by (the sd_notify socket, directory watches). From :meth:`Run.activate` on, the
process-wide reactor serves all of these descriptors: it drains the output, records the
exit the moment it happens and wakes the threads blocked in :meth:`Run.wait_change`.
:meth:`Run.close` frees every descriptor; the spools stay readable until
:meth:`Run.release`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mirakuru.adapter.clock import wait_slice
from mirakuru.adapter.run.pump import DEFAULT_LIMIT, OutputPump
from mirakuru.adapter.run.reactor import reactor
from mirakuru.adapter.run.sources import EventSource, Hint
from mirakuru.adapter.run.waiter import Wakeups, idle_wakeups
from mirakuru.adapter.spawn.process import open_pidfd

__all__ = ["Marks", "Run", "RunWakeups"]

#: The real class, kept before a test can patch ``subprocess.Popen`` with a stand-in.
_REAL_POPEN = subprocess.Popen

#: (events, hints) counters: a waiter compares them with what it saw last.
Marks = tuple[int, int]


class Run:
    """The resources of one started process, freed together by :meth:`close`."""

    def __init__(
        self, process: subprocess.Popen[Any], output_limit: int | None = DEFAULT_LIMIT
    ) -> None:
        self.process = process
        #: The thread that spawned the process (a start it interrupts must undo it).
        self.spawner = threading.get_ident()
        #: A stand-in for Popen (a test's mock) is driven only through its own methods.
        self.real = isinstance(process, _REAL_POPEN)
        self.pidfd = open_pidfd(process.pid) if self.real else None
        streams: dict[str, int] = {}
        if self.real:
            for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
                if pipe is not None:
                    streams[name] = pipe.fileno()
        self.pump = OutputPump(streams, output_limit)
        #: The text readers handed out by ``output()``, kept until :meth:`release`.
        self.readers: dict[str, io.TextIOWrapper] = {}
        #: Where a stream's reader begins when first asked for (say, after its banner).
        self.reader_starts: dict[str, int] = {}
        self.stopping = False
        # Released when something happened, held while nothing did: a waiter blocks in one
        # acquire(timeout), cheaper per wake-up than a Condition (issue 16's polling CPU).
        self._signal = threading.Lock()
        self._signal.acquire()
        self._exit_lock = threading.Lock()
        # Written by the reactor's thread only; a waiter compares them with what it saw.
        self._events = 0  # bumped whenever a descriptor of this run was served
        self._hints = 0  # bumped when a hint (say, a watched directory) changed
        self._watched: dict[int, EventSource] = {}
        self._polled = False
        self._active = False
        self._closed = False
        #: The exit code, once the reactor has seen the exit.
        self.exit_seen: int | None = None
        self._on_exit: Callable[[int], None] | None = None
        #: Called after every wake-up of the waiters, from whichever thread woke them:
        #: how an async waiter (which cannot block in :meth:`wait_change`) hears of events.
        self._pokes: tuple[Callable[[], None], ...] = ()

    # -- handing descriptors to the reactor -------------------------------------------------

    def activate(self) -> None:
        """From now on the reactor drains the output and watches for the exit."""
        if self._active or self._closed or not self.real:
            return
        self._active = True
        handlers = []
        for stream in self.pump.sources():
            stream.on_match = self._bump
            handlers.append((stream.fileno(), self._served(stream)))
        pollers: list[tuple[object, Callable[[], bool]]] = []
        if self.pidfd is not None:
            handlers.append((self.pidfd, self._pidfd_readable))
        else:
            self._polled = True
            pollers.append((self, self._poll_exit))
        reactor().add_all(handlers, pollers)  # one wake-up of the reactor's thread for them all

    def watch(self, source: EventSource, *, hint: bool = False) -> None:
        """Have the reactor serve ``source`` and wake this run's waiters after each event.

        A ``hint`` (a directory watch) also tells the waiter that readiness is probably
        moments away.
        """
        if not self._closed:
            self._add(source.fileno(), self._served(source, hint))

    def _served(self, source: EventSource, hint: bool = False) -> Callable[[], bool]:
        """The reactor's handler for ``source`` (now one of the run's watched sources)."""

        def readable() -> bool:
            more = source.on_readable()
            self._bump(hint)
            return more

        self._watched[source.fileno()] = source
        return readable

    def unwatch(self, source: EventSource) -> None:
        """Take ``source`` back from the reactor; once this returns no handler runs for it."""
        fd = source.fileno()
        if self._watched.pop(fd, None) is not None:
            reactor().remove(fd)

    def _add(self, fd: int, handler: Callable[[], bool]) -> None:
        reactor().add(fd, handler)

    def _bump(self, hint: bool = False) -> None:
        if hint:
            self._hints += 1
        self._events += 1
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # already released: already woken
            self._signal.release()
        for poke in self._pokes:
            poke()

    def subscribe(self, poke: Callable[[], None]) -> None:
        """Also call ``poke()`` (which must never block) whenever waiters are woken."""
        self._pokes = (*self._pokes, poke)  # replaced whole: the reactor reads it unlocked

    def unsubscribe(self, poke: Callable[[], None]) -> None:
        """Stop calling ``poke``; a wake-up already under way may still call it once."""
        self._pokes = tuple(p for p in self._pokes if p is not poke)

    # -- exit -------------------------------------------------------------------------------

    def _pidfd_readable(self) -> bool:
        code = self.exit_code()
        # A readable pidfd with no code: someone reaped it (Popen.poll); it exited anyway.
        self._exited(code if code is not None else self.process.returncode)
        return False  # a pidfd stays readable after the exit: the reactor is done with it

    def _poll_exit(self) -> bool:
        code = self.exit_code()
        if code is None:
            return self.process.returncode is None
        self._exited(code)
        return False

    def _exited(self, code: int | None) -> None:
        with self._exit_lock:
            self.exit_seen = code
            on_exit = self._on_exit
        self._bump()
        if on_exit is not None and code is not None:
            on_exit(code)

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
        except (ChildProcessError, OSError):
            return None
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    # -- waiting ----------------------------------------------------------------------------

    def marks(self) -> Marks:
        """The counters a waiter starts from."""
        return self._events, self._hints

    def wait_change(self, seen: Marks, timeout: float | None) -> Marks:
        """Block until something happened since ``seen``, a stop began, or ``timeout``.

        It may also return early once after an event the waiter had already seen: one
        extra check, never a missed event.
        """
        if (self._events, self._hints) == seen and not self.stopping:
            self._signal.acquire(True, -1 if timeout is None else wait_slice(timeout))
        return self._events, self._hints

    @contextlib.contextmanager
    def serving(self, hints: Sequence[Hint]) -> Iterator[Callable[[], Wakeups]]:
        """For one wait: the run active and its ``hints`` served by the reactor; yields what
        makes the waiter's wake-ups. The hints are closed afterwards."""
        self.activate()
        for hint in hints:
            self.watch(hint, hint=True)
        try:
            yield (lambda: RunWakeups(self)) if self.real else idle_wakeups
        finally:
            for hint in hints:
                self.unwatch(hint)
                hint.close()

    def mark_stopping(self) -> None:
        """Another thread stops this run: wake the waiting start() so it gives up."""
        self.stopping = True
        self._wake()

    # -- after start-up ---------------------------------------------------------------------

    def hand_over(self, on_exit: Callable[[int], None]) -> None:
        """The process is ready: from now on ``on_exit(code)`` is called when it exits."""
        if not self.real:
            return
        self.activate()
        with self._exit_lock:
            self._on_exit = on_exit
            code = self.exit_seen
        if code is not None:
            # It exited while start() was finishing: report it from the reactor's thread,
            # as any later exit would be, not from inside start().
            def report() -> bool:
                on_exit(code)
                return False

            reactor().add_poller(object(), report)

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

    def close(self) -> None:
        """Free every descriptor of the run; the spools stay readable."""
        if self._closed:
            return
        self._closed = True
        for source in list(self._watched.values()):
            self.unwatch(source)
        if self._active and self.pidfd is not None:
            reactor().remove(self.pidfd)
        if self._polled:
            reactor().remove_poller(self)
        self.pump.close()
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
            # Made on first use: a reader's buffer costs 8 KiB, and most are never read.
            start = self.reader_starts.get(name, position)
            reader = self.readers[name] = stream.spool.reader(start)
        return reader

    def drain_tail(self) -> list[str]:
        """The output tail after reading what a dead process left in its pipes."""
        for stream in self.pump.sources():
            self.unwatch(stream)  # taken back from the reactor: read here, to the end
            stream.drain()
        return self.pump.tail()

    def dropped_note(self) -> str | None:
        """A history note about output kept out by ``output_limit``, or lost because the
        spool failed (disk full, no descriptors), if any was."""
        notes = []
        dropped = self.pump.dropped()
        if dropped:
            counts = ", ".join(f"{name}: {count} bytes" for name, count in dropped.items())
            notes.append(f"output beyond output_limit left out ({counts})")
        for name, (lost, why) in self.pump.lost().items():
            notes.append(
                f"output not kept after the spool failed ({why}): {name}: {lost} bytes lost"
            )
        return "; ".join(notes) or None

    def release(self) -> None:
        """Free the readers and spools too: a new start begins a new record."""
        for reader in self.readers.values():
            reader.close()
        self.readers = {}
        self.reader_starts = {}
        self.close()
        self.pump.release()


class RunWakeups:
    """Wakes when the reactor served one of the run's descriptors (or a stop began)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._seen = run.marks()
        self.served = 0.0  # the reactor serves the sources, on its own thread
        self.woken = False

    def wait(self, timeout: float) -> bool:
        run = self._run
        seen = self._seen
        if (run._events, run._hints) == seen and not run.stopping:
            # The lock is released by whoever has news: acquiring it is the wake-up.
            self.woken = run._signal.acquire(True, -1 if math.isinf(timeout) else max(0.0, timeout))
            if not self.woken and not run.stopping:
                return False  # its time ran out, nothing happened: the common case
        marks = self._seen = (run._events, run._hints)
        self.woken = True
        return marks[1] != seen[1]
