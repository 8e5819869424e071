"""Whether anything of a service is left once its leader (our direct child) has exited.

A launcher that daemonizes exits 0 and leaves its service running, so an exit proves
nothing by itself. This module answers the question that does: is any process of the
service still alive? It only ever reads (``/proc``, the cgroup, psutil) and signals nobody,
so where the answer cannot be certain it errs towards "maybe": the cost of a wrong "maybe"
is a wait that runs to its timeout, as it always did.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

import psutil

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import identity
from mirakuru.adapter.spawn.procfs import read, stat_fields

__all__ = ["anything_left"]

_PROC = "/proc"


def anything_left(process: subprocess.Popen[Any], marker: str, token: str) -> bool:
    """Whether a process of the service that ``process`` led may still be running.

    Yes when its cgroup has a member. Without a cgroup (or with one the leader moved into
    late, so that an early fork may live outside it) also when a live process is in the
    leader's process group or session, carries ``marker=token`` in its environment, or
    started after the leader and was adopted by one of our ancestors (pid 1 or a
    subreaper): where a daemon that left the group and wiped its environment (as
    ``redis-server --daemonize yes`` does) ends up once the launcher exits.
    """
    pinned = identity.of(process)
    group = pinned.group if pinned is not None else None
    if group is not None:
        if group.populated():
            return True
        if group.sealed():
            return False  # the whole tree was born inside, and the cgroup is empty
    leader = process.pid
    related = {leader}
    if pinned is not None:
        related |= {value for value in (pinned.pgid, pinned.sid) if value is not None}
    started = pinned.started if pinned is not None else None
    entry = f"{marker}={token}".encode()
    if capabilities().proc_fs:
        return _proc_scan(leader, related, started, entry)
    return _psutil_scan(leader, related, started, marker, token)


def _carries(block: bytes, entry: bytes) -> bool:
    return block.startswith(entry + b"\0") or (b"\0" + entry + b"\0") in block


def _ancestors_proc() -> set[int]:
    """Our parent, its parent... up to pid 1: where an orphan of our tree is re-parented."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 0 and pid not in found:
        found.add(pid)
        fields = stat_fields(pid, _PROC, upto=3)
        if fields is None:
            break
        try:
            pid = int(fields[1])
        except (IndexError, ValueError):
            break
    return found | {1}


def _proc_scan(leader: int, related: set[int], started: float | None, entry: bytes) -> bool:
    me = os.getpid()
    ancestors = _ancestors_proc()
    for name in os.listdir(_PROC):
        if not name.isdigit() or int(name) in (me, leader):
            continue
        fields = stat_fields(name, _PROC, upto=20)
        if fields is None or fields[0] in (b"Z", b"X"):
            continue  # gone, or a zombie: not running
        try:
            parent, pgid, sid, began = int(fields[1]), int(fields[2]), int(fields[3]), fields[19]
            young = started is None or int(began) >= started
        except (IndexError, ValueError):
            continue
        if pgid in related or sid in related:
            return True
        if not young:
            continue  # older than the leader: it cannot have inherited the marker
        if parent in ancestors:
            return True
        block = read(f"{_PROC}/{name}/environ")
        if block and _carries(block, entry):
            return True
    return False


def _psutil_scan(
    leader: int, related: set[int], started: float | None, marker: str, token: str
) -> bool:
    me = os.getpid()
    ancestors = {1}
    with contextlib.suppress(psutil.Error):
        ancestors |= {parent.pid for parent in psutil.Process(me).parents()}
    for process in psutil.process_iter():
        pid = process.pid
        if pid in (me, leader):
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(pid) in related or os.getsid(pid) in related:
                return True
            if started is not None and process.create_time() < started:
                continue
            if process.ppid() in ancestors or process.environ().get(marker) == token:
                return True
        except (psutil.Error, OSError):
            continue  # gone, or not ours to read
    return False
