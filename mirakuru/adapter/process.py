"""Spawning a child in its own session and watching it exit without polling."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

__all__ = ["ExitWatch", "open_pidfd", "send_signal", "spawn"]


def spawn(argv: list[str] | str, popen_kwargs: Mapping[str, Any]) -> subprocess.Popen[str]:
    """Start ``argv`` with ``popen_kwargs``; a new session unless told otherwise.

    ``start_new_session`` (setsid in the fast spawn path) replaces the published
    ``preexec_fn=os.setsid``, which forces the slow fork path and is not thread-safe.
    """
    kwargs = dict(popen_kwargs)
    if "preexec_fn" not in kwargs and "process_group" not in kwargs:
        kwargs.setdefault("start_new_session", True)
    return subprocess.Popen(argv, **kwargs)


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` where the kernel has them, else None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def send_signal(pidfd: int | None, pid: int, sig: int) -> bool:
    """Signal one process, through its pidfd when there is one (no recycled-PID risk).

    Returns False when the process is already gone.
    """
    try:
        if pidfd is not None and hasattr(signal, "pidfd_send_signal"):
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


class ExitWatch:
    """Makes a waiter wake the moment the child exits (its pidfd becomes readable).

    Without pidfds there is nothing to poll, and the waiter's schedule notices the exit.
    """

    def __init__(self, pidfd: int) -> None:
        self._pidfd = pidfd

    def fileno(self) -> int:
        return self._pidfd

    def on_readable(self) -> bool:
        # Readable stays readable after exit: unregister, the check sees the exit itself.
        return False
