"""Spawning a child in its own session and watching it exit without polling."""

from __future__ import annotations

import os
import signal
import subprocess
import weakref
from collections.abc import Mapping
from typing import Any

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import cgroup
from mirakuru.adapter.spawn.procfs import forks_so_far

__all__ = ["forks_before", "forks_so_far", "group_of", "open_pidfd", "send_signal", "spawn"]

_forks_before: weakref.WeakKeyDictionary[subprocess.Popen[Any], int] = weakref.WeakKeyDictionary()
_groups: weakref.WeakKeyDictionary[subprocess.Popen[Any], cgroup.Cgroup] = (
    weakref.WeakKeyDictionary()
)


def spawn(
    argv: list[str] | str,
    popen_kwargs: Mapping[str, Any],
    token: str | None = None,
    *,
    move_later: bool = False,
) -> subprocess.Popen[str]:
    """Start ``argv`` with ``popen_kwargs``; a new session unless told otherwise.

    ``start_new_session`` (setsid in the fast spawn path) replaces the published
    ``preexec_fn=os.setsid``, which forces the slow fork path and is not thread-safe.

    With a ``token`` and a writable cgroup v2, the child is moved into a cgroup of its own
    (see :func:`group_of`): before this returns, or with ``move_later`` (for a caller that
    does not wait for the child) by the cgroup thread, the child stopped until it landed.
    """
    kwargs = dict(popen_kwargs)
    if "preexec_fn" not in kwargs and "process_group" not in kwargs:
        kwargs.setdefault("start_new_session", True)
    group = cgroup.create() if token and capabilities().cgroup else None
    later = group is not None and move_later and capabilities().pidfd
    if group is not None and not later:
        # Whatever the child forks before its move is born outside the cgroup, and a cold
        # move waits out an RCU grace period (~10 ms) first: a daemon that forks, setsid()s
        # and wipes its environment sooner would be lost. Paid here, before the child
        # exists, the wait leaves the move right after Popen a matter of microseconds.
        # (A caller that waits for the child anyway loses nothing by it.)
        cgroup.warm_up()
    # Counted before the child exists, so that the cgroup move can tell whether the child
    # (or anyone) created a task before the move landed: see cgroup.Cgroup.sealed().
    before = forks_so_far() if capabilities().cgroup else None
    try:
        process = subprocess.Popen(argv, **kwargs)
    except BaseException:
        if group is not None:
            group.remove()
        raise
    if before is not None:
        _forks_before[process] = before
    if group is not None:
        group.adopt_child(process, before, later=later)
        _groups[process] = group
    return process


def forks_before(process: subprocess.Popen[Any]) -> int | None:
    """:func:`forks_so_far` as it was just before ``process`` was spawned, if recorded."""
    try:
        return _forks_before.get(process)
    except TypeError:
        return None


def group_of(process: subprocess.Popen[Any]) -> cgroup.Cgroup | None:
    """The cgroup :func:`spawn` moved ``process`` into, if it made one."""
    try:
        return _groups.get(process)
    except TypeError:
        return None


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` where the kernel has them (and portable mode is off), else None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not capabilities().pidfd:
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
