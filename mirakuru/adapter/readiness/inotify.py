"""Directory watches through Linux inotify, so a file or socket appearing wakes a waiter.

A pid file or a unix socket is created by ``open``/``rename``/``bind`` in some directory;
an inotify watch on that directory turns its appearance into a wake-up about a
millisecond later instead of one poll interval later. Where inotify is unavailable the
waiter simply keeps polling.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from typing import TYPE_CHECKING

from mirakuru.adapter.capabilities import capabilities

if TYPE_CHECKING:
    import ctypes

__all__ = ["DirectoryWatch", "watch_directory", "watches_available"]

# getattr: these flags are POSIX-only, and importing must not fail elsewhere.
_IN_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_MASK = _IN_CREATE | _IN_MOVED_TO | _IN_CLOSE_WRITE | _IN_ATTRIB


@functools.cache
def _load_libc() -> ctypes.CDLL | None:
    # Loaded on the first watch: ctypes costs several ms to import, and most runs need none.
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "inotify_init1") else None


class DirectoryWatch:
    """An inotify descriptor watching one directory for entries being created or renamed in."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def on_readable(self) -> bool:
        """Discard the queued events: the waiter only needs to know something changed."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._fd, 4096):
                pass
        return True

    def close(self) -> None:
        """Remove the watch, without making the caller wait for it."""
        _close_later(self._fd)


_closing: queue.SimpleQueue[int] | None = None
_closing_lock = threading.RLock()  # re-entrant: see _close_later


def _close_later(fd: int) -> None:
    """Close ``fd`` on a helper thread.

    Closing an inotify descriptor waits for an RCU grace period in the kernel, 10-15 ms
    here: paid by the caller, it would come straight out of the detection lag.
    """
    global _closing  # noqa: PLW0603 - one closer thread per process
    closing = _closing
    if closing is None:
        with _closing_lock:
            if _closing is None:
                fds: queue.SimpleQueue[int] = queue.SimpleQueue()
                threading.Thread(
                    target=_closer, args=(fds,), name="mirakuru-inotify-closer", daemon=True
                ).start()
                _closing = fds
            closing = _closing
    closing.put(fd)  # SimpleQueue.put is safe even from a finalizer or signal handler


def _closer(fds: queue.SimpleQueue[int]) -> None:
    while True:
        fd = fds.get()
        with contextlib.suppress(OSError):
            os.close(fd)


def _forget_after_fork() -> None:
    """In a forked child: the parent's closer thread does not exist here, so a queue it
    would serve only collects descriptors; the first close in the child starts a new one."""
    global _closing, _closing_lock  # noqa: PLW0603 - one closer thread per process
    _closing = None
    _closing_lock = threading.RLock()  # the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def watches_available() -> bool:
    """Whether :func:`watch_directory` can make watches in this process (Linux inotify, and
    not portable mode)."""
    return capabilities().inotify and _load_libc() is not None


def watch_directory(path: str) -> DirectoryWatch | None:
    """A watch on the directory that will hold ``path``, or None if it cannot be had."""
    if not capabilities().inotify:
        return None  # portable mode: the waiter polls, as it must where inotify is missing
    libc = _load_libc()
    if libc is None:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), _MASK) < 0:
        os.close(fd)
        return None
    return DirectoryWatch(fd)
