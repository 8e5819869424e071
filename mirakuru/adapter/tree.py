"""Finding and terminating a process tree: the group, the descendants, the marked escapees.

Only processes we own are ever signalled: descendants are taken from a psutil snapshot
(psutil checks a process's identity before signalling, so a recycled PID is never hit),
escapees must carry our marker with exactly our token, and the group is signalled only
while its leader is still unreaped (so the group ID cannot have been recycled).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterable

import attrs
import psutil

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.process import open_pidfd

__all__ = ["TreeReport", "descendants", "processes_with_env", "signal_all", "wait_gone"]


def processes_with_env(env_name: str, env_value: str) -> set[int]:
    """PIDs of processes whose environment has ``env_name`` set to exactly ``env_value``."""
    found: set[int] = set()
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            if process.environ().get(env_name) == env_value:
                found.add(process.pid)
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or not ours to read: not ours to signal either
    return found


def descendants(pid: int) -> list[psutil.Process]:
    """A snapshot of every descendant of ``pid`` (empty when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def as_processes(pids: Iterable[int]) -> list[psutil.Process]:
    """psutil handles for the PIDs that still exist."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return found


def signal_all(processes: Iterable[psutil.Process], sig: int) -> set[int]:
    """Send ``sig`` to each process still alive (identity-checked); the PIDs signalled."""
    signalled = set()
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.Error:
            continue
        signalled.add(process.pid)
    return signalled


def signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group, ignoring a group that is already empty."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@attrs.frozen(slots=True)
class TreeReport:
    """Which of a set of processes were still alive when a wait gave up."""

    survivors: tuple[int, ...]


def wait_gone(
    processes: Iterable[psutil.Process],
    timeout: float,
    clock: Callable[[], float] = monotonic,
) -> TreeReport:
    """Wait up to ``timeout`` for every process to exit, woken by pidfds where possible."""
    pending: dict[int, psutil.Process] = {}
    poller = select.poll()
    for process in processes:
        fd = open_pidfd(process.pid)
        if fd is None:
            continue
        # The pidfd could name a newer process with a recycled PID: check the identity.
        if not _same(process):
            os.close(fd)
            continue
        pending[fd] = process
        poller.register(fd, select.POLLIN)
    deadline = clock() + timeout
    try:
        while pending:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            for fd, _ in poller.poll(max(1, int(remaining * 1000) + 1)):
                poller.unregister(fd)
                os.close(fd)
                pending.pop(fd, None)
    finally:
        for fd in pending:
            os.close(fd)
    return TreeReport(tuple(p.pid for p in pending.values() if _alive(p)))


def _same(process: psutil.Process) -> bool:
    try:
        return process.is_running()
    except psutil.Error:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


KILL = signal.SIGKILL
