"""What we pin about each spawned service, none of which the service can erase.

Recorded right after spawning: the leader's PID and start time (``/proc/<pid>/stat``, or
psutil's ``create_time`` where there is no ``/proc``), its process group and session, and,
where cgroups are available, a cgroup of its own that the leader is moved into. The
environment marker stays as one more clue, but nothing depends on it: programs such as
redis-server rewrite their process title and blank ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import weakref
from typing import Any

import attrs
import psutil

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import cgroup
from mirakuru.adapter.spawn.process import group_of
from mirakuru.adapter.spawn.procfs import stat_fields

__all__ = ["Identity", "forget", "of", "pin", "start_time"]


@attrs.frozen(slots=True)
class Identity:
    """A spawned leader, pinned: same PID *and* same start time means same process."""

    pid: int
    started: float | None
    pgid: int | None
    sid: int | None
    group: cgroup.Cgroup | None = attrs.field(default=None, eq=False)

    def same_process(self, pid: int) -> bool:
        """Whether ``pid`` is still the process we spawned (not a recycled PID)."""
        return self.started is not None and pid == self.pid and start_time(pid) == self.started


_pinned: weakref.WeakKeyDictionary[subprocess.Popen[Any], Identity] = weakref.WeakKeyDictionary()


def start_time(pid: int) -> float | None:
    """The process's start time (clock ticks since boot from ``/proc``, else epoch seconds)."""
    if capabilities().proc_fs:
        fields = stat_fields(pid)
        if fields is None:
            return None
        try:
            return float(int(fields[19]))
        except (IndexError, ValueError):
            return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def pin(process: subprocess.Popen[Any]) -> Identity | None:
    """Record the identity of a freshly spawned child, with the cgroup spawn() moved it into.

    Tolerates stand-ins for Popen (tests of users' mocks): anything odd gives None.
    """
    pid = getattr(process, "pid", None)
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    group = group_of(process)  # made and joined in spawn(), before the child could fork
    if getattr(process, "returncode", None) is not None:
        if group is not None:
            group.remove()  # only if empty: whatever the child left there is not ours to kill
        return None
    pgid = sid = None
    with contextlib.suppress(OSError):
        pgid = os.getpgid(pid)
        sid = os.getsid(pid)
    identity = Identity(pid, start_time(pid), pgid, sid, group)
    with contextlib.suppress(TypeError):
        _pinned[process] = identity
    return identity


def of(process: subprocess.Popen[Any] | None) -> Identity | None:
    """The identity pinned for ``process`` at spawn, if any."""
    if process is None:
        return None
    try:
        return _pinned.get(process)
    except TypeError:
        return None


def forget(process: subprocess.Popen[Any] | None) -> None:
    """The service's tree is gone (or being reaped): delete its cgroup, never blocking."""
    if process is None:
        return
    try:
        identity = _pinned.pop(process, None)
    except TypeError:
        return
    if identity is not None and identity.group is not None:
        identity.group.remove_later()
