"""Spawning a child in its own session and watching it exit without polling."""

from __future__ import annotations

import os
import signal
import subprocess
import weakref
from collections.abc import Mapping
from typing import Any

from mirakuru.adapter import procfs
from mirakuru.adapter.capabilities import capabilities

__all__ = ["forks_before", "forks_so_far", "open_pidfd", "send_signal", "spawn"]

_forks_before: weakref.WeakKeyDictionary[subprocess.Popen[Any], int] = weakref.WeakKeyDictionary()


def spawn(argv: list[str] | str, popen_kwargs: Mapping[str, Any]) -> subprocess.Popen[str]:
    """Start ``argv`` with ``popen_kwargs``; a new session unless told otherwise.

    ``start_new_session`` (setsid in the fast spawn path) replaces the published
    ``preexec_fn=os.setsid``, which forces the slow fork path and is not thread-safe.
    """
    kwargs = dict(popen_kwargs)
    if "preexec_fn" not in kwargs and "process_group" not in kwargs:
        kwargs.setdefault("start_new_session", True)
    # Counted before the child exists, so that the cgroup move can tell whether the child
    # (or anyone) created a task before the move landed: see cgroup.Cgroup.sealed().
    before = forks_so_far() if capabilities().cgroup else None
    process = subprocess.Popen(argv, **kwargs)
    if before is not None:
        _forks_before[process] = before
    return process


def forks_so_far() -> int | None:
    """How many tasks the kernel has created since boot (``processes`` in ``/proc/stat``)."""
    data = procfs.read("/proc/stat")
    if data is None:
        return None
    start = data.find(b"\nprocesses ")
    if start < 0:
        return None
    end = data.find(b"\n", start + 1)
    try:
        return int(data[start + 11 : end if end > 0 else None])
    except ValueError:
        return None


def forks_before(process: subprocess.Popen[Any]) -> int | None:
    """:func:`forks_so_far` as it was just before ``process`` was spawned, if recorded."""
    try:
        return _forks_before.get(process)
    except TypeError:
        return None


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
