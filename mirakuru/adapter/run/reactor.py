"""The reactor: one daemon thread per Python process serving every executor's descriptors.

Running executors hand it their output pipes (drained into spools in blocks) and their
pidfds (so an exit is recorded the moment it happens); without pidfds, children are
polled through ``Popen.poll`` on a short schedule instead. The thread starts on first use,
is re-made in a forked child (never inherited), and never raises into or blocks its users:
a handler that fails is logged once and dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable, Sequence

from mirakuru.adapter import interrupts

__all__ = ["EXIT_POLL_INTERVAL", "Reactor", "reactor"]

LOG = logging.getLogger(__name__)

#: How often children without a pidfd are polled for their exit, in seconds.
EXIT_POLL_INTERVAL = 0.05
#: How long remove() waits for a running handler to finish before giving up on it.
_REMOVE_WAIT = 5.0

#: Called when its descriptor is readable; returns False when it is done with it.
Handler = Callable[[], bool]
#: Called on the reactor's schedule (no descriptor); returns False when done.
Poller = Callable[[], bool]


class Reactor:
    """Dispatches readiness of registered descriptors to handlers on one thread."""

    def __init__(self) -> None:
        # Held while a handler runs: remove() waits for it. Re-entrant: a finalizer that
        # stops an executor (remove) may run on a thread that is inside add().
        self._lock = threading.RLock()
        self._handlers: dict[int, Handler] = {}
        self._pollers: dict[object, Poller] = {}
        self._dirty = True
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()

    @property
    def thread(self) -> threading.Thread | None:
        """The reactor's thread, once started."""
        return self._thread

    def add(self, fd: int, handler: Handler) -> None:
        """Call ``handler`` on the reactor thread whenever ``fd`` is readable."""
        self.add_all([(fd, handler)])

    def add_all(
        self, handlers: list[tuple[int, Handler]], pollers: Sequence[tuple[object, Poller]] = ()
    ) -> None:
        """:meth:`add` for each ``(fd, handler)`` and :meth:`add_poller` for each ``(key,
        poller)``, waking the thread once for them all."""
        with self._lock:
            for fd, handler in handlers:
                self._handlers[fd] = handler
            self._pollers.update(pollers)
            self._dirty = self._dirty or bool(handlers)
            self._ensure_thread()
        self._wake()

    def add_poller(self, key: object, poller: Poller) -> None:
        """Call ``poller`` every :data:`EXIT_POLL_INTERVAL` seconds until it returns False."""
        self.add_all([], [(key, poller)])

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``; once this returns, no handler for it is running."""
        if threading.current_thread() is self._thread:
            self._handlers.pop(fd, None)
            self._dirty = True
            return
        with interrupts.deferred():  # Ctrl-C between acquire() and try would keep the lock
            if not self._lock.acquire(timeout=_REMOVE_WAIT):
                LOG.error("mirakuru reactor busy for %s s; dropping fd %d anyway", _REMOVE_WAIT, fd)
                self._handlers.pop(fd, None)
                return
            try:
                self._handlers.pop(fd, None)
                self._dirty = True
            finally:
                self._lock.release()
        # Not woken: its next poll() is set up afresh (dirty), and the one under way may
        # only report the descriptor, which no handler answers any more (nor a reuse of
        # its number). Two wake-ups fewer per stop, each a thread switch and the GIL.

    def remove_poller(self, key: object) -> None:
        """Stop calling the poller registered under ``key``."""
        if threading.current_thread() is self._thread:
            self._pollers.pop(key, None)
            return
        with self._lock:
            self._pollers.pop(key, None)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mirakuru-reactor", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already means "wake up"
            os.write(self._wake_write, b"x")

    def _run(self) -> None:
        poller = select.poll()
        watched: dict[int, Handler] = {}
        while True:
            try:
                with self._lock:
                    if self._dirty:
                        poller = select.poll()
                        poller.register(self._wake_read, select.POLLIN)
                        watched = dict(self._handlers)
                        for fd in watched:
                            poller.register(fd, select.POLLIN)
                        self._dirty = False
                    timeout = int(EXIT_POLL_INTERVAL * 1000) if self._pollers else -1
                events = poller.poll(timeout)
                with self._lock:
                    self._dispatch(events, watched)
                    self._run_pollers()
            except Exception:  # never let the thread die: it serves every executor
                LOG.exception("mirakuru reactor: unexpected error, continuing")

    def _dispatch(self, events: list[tuple[int, int]], watched: dict[int, Handler]) -> None:
        for fd, _ in events:
            if fd == self._wake_read:
                with contextlib.suppress(OSError):
                    os.read(self._wake_read, 4096)
                continue
            handler = watched.get(fd)
            if handler is None or self._handlers.get(fd) is not handler:
                continue  # removed (or the number reused) since the poll began
            if not self._call(handler):
                self._handlers.pop(fd, None)
                self._dirty = True

    def _run_pollers(self) -> None:
        for key, poller in list(self._pollers.items()):
            if not self._call(poller):
                self._pollers.pop(key, None)

    @staticmethod
    def _call(handler: Callable[[], bool]) -> bool:
        try:
            return handler()
        except Exception:
            LOG.exception("mirakuru reactor: handler %r failed; dropped", handler)
            return False

    def close_inherited(self) -> None:
        """In a forked child: drop the parent's reactor descriptors (the thread is gone)."""
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Current:
    """This process's reactor (a class attribute, so a fork handler can reset it)."""

    reactor: Reactor | None = None
    lock = threading.RLock()


def reactor() -> Reactor:
    """This process's reactor, made on first use (and again in a forked child)."""
    current = _Current.reactor
    if current is not None:
        return current
    with _Current.lock:
        if _Current.reactor is None:
            _Current.reactor = Reactor()
        return _Current.reactor


def _after_fork_in_child() -> None:
    inherited, _Current.reactor = _Current.reactor, None
    _Current.lock = threading.RLock()
    if inherited is not None:
        inherited.close_inherited()


if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere start() refuses anyway
    os.register_at_fork(after_in_child=_after_fork_in_child)
