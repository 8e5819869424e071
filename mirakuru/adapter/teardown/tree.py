"""Finding and signalling the processes of one tree, without ever hitting a stranger.

Every process we signal is first pinned as a :class:`Member`: a pidfd opened *before* its
identity is checked (same start time as in the snapshot, or the exact ownership marker in
its environment), so a PID recycled in between can never receive the signal. Where the
kernel has no pidfds, psutil's identity-checked handles do the same job.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
from collections.abc import Callable, Iterable

import psutil

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.clock import monotonic, wait_slice
from mirakuru.adapter.spawn.process import open_pidfd
from mirakuru.adapter.spawn.procfs import read as _read
from mirakuru.adapter.spawn.procfs import stat_fields

__all__ = [
    "Member",
    "claim_marked",
    "descendants",
    "processes_with_any",
    "processes_with_env",
    "signal_all",
    "signal_group",
    "snapshot",
    "survey",
    "wait_gone",
]

_PROC = "/proc"
_HAS_PROC_ENVIRON = os.path.exists(f"{_PROC}/self/environ")
_CAN_PIDFD_SIGNAL = hasattr(signal, "pidfd_send_signal")


def _proc_fs() -> bool:
    """Whether to read ``/proc`` directly (False: psutil, as ``MIRAKURU_PORTABLE=1`` forces)."""
    return _HAS_PROC_ENVIRON and capabilities().proc_fs


def _read_environ(pid: int | str) -> bytes | None:
    """The raw environment block of a process (``None`` if gone or unreadable)."""
    return _read(f"{_PROC}/{pid}/environ")


def _carries(block: bytes, entry: bytes) -> bool:
    """Whether ``entry`` (``NAME=value``) is exactly one of the block's entries."""
    return block.startswith(entry + b"\0") or (b"\0" + entry + b"\0") in block


def processes_with_env(env_name: str, env_value: str) -> set[int]:
    """PIDs of processes whose environment has ``env_name`` set to exactly ``env_value``.

    Exact match only: a value that merely contains ``env_value`` is someone else's.
    """
    return set(processes_with_any(env_name, {env_value}))


def processes_with_any(env_name: str, values: set[str]) -> dict[int, str]:
    """Every process (but this one) whose ``env_name`` is exactly one of ``values``.

    One pass over the process table however many values are asked for; reads
    ``/proc/<pid>/environ`` directly where it exists (about four times cheaper than psutil).
    """
    if not values:
        return {}
    me = os.getpid()
    if not _proc_fs():
        return _processes_with_any_psutil(env_name, values, me)
    entries = {f"{env_name}={value}".encode(): value for value in values}
    probe = f"{env_name}=".encode()
    found: dict[int, str] = {}
    for name in os.listdir(_PROC):
        if not name.isdigit() or int(name) == me:
            continue
        block = _read_environ(name)
        if not block or probe not in block:
            continue
        for entry, value in entries.items():
            if _carries(block, entry):
                found[int(name)] = value
                break
    return found


def _processes_with_any_psutil(env_name: str, values: set[str], me: int) -> dict[int, str]:
    found: dict[int, str] = {}
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            value = process.environ().get(env_name)
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or not ours to read: not ours to signal either
        if value in values:
            found[process.pid] = value
    return found


class Member:
    """One process of a tree we own, pinned so that a recycled PID is never signalled."""

    __slots__ = ("_fd", "_owns_fd", "_process", "pid")

    def __init__(
        self, pid: int, fd: int | None, process: psutil.Process | None, *, owns_fd: bool = True
    ) -> None:
        self.pid = pid
        self._fd = fd
        self._process = process
        self._owns_fd = owns_fd

    @classmethod
    def of_child(cls, pid: int, pidfd: int | None) -> Member:
        """Our own direct child, whose pidfd the caller already holds (and keeps)."""
        return cls(pid, pidfd, None, owns_fd=False)

    @classmethod
    def pin(cls, process: psutil.Process) -> Member | None:
        """Pin a process from a snapshot: still the same process (start time), or None."""
        fd = open_pidfd(process.pid)
        try:
            same = process.is_running()  # compares the start time recorded in the snapshot
        except psutil.Error:
            same = False
        if not same:
            if fd is not None:
                os.close(fd)
            return None
        return cls(process.pid, fd, process)

    @classmethod
    def pinned(cls, pid: int) -> Member | None:
        """Pin ``pid`` as it is now (the caller then checks it is the process it means)."""
        fd = open_pidfd(pid)
        if fd is not None:
            return cls(pid, fd, None)
        process = _maybe_process(pid)
        return cls(pid, None, process) if process is not None else None

    @classmethod
    def claim(cls, pid: int, env_name: str, token: str) -> Member | None:
        """Pin ``pid`` if, after pinning, it carries exactly our marker and runs as our
        user; else None.

        A marker is only a clue: another user can copy a token into a process of theirs
        (root can read every environment, and a token once leaked stays valid). Their
        process is never ours to signal; ours that changed user are found through their
        tree or cgroup instead.
        """
        fd = open_pidfd(pid)
        if fd is not None and _proc_fs():
            block = _read_environ(pid)
            if (
                block is not None
                and _carries(block, f"{env_name}={token}".encode())
                and _real_uid(pid) in _own_uids()
            ):
                return cls(pid, fd, None)
            os.close(fd)
            return None
        if fd is not None:
            os.close(fd)
        try:
            process = psutil.Process(pid)
            if process.environ().get(env_name) != token:
                return None
            if process.uids().real not in _own_uids():
                return None
        except (psutil.Error, OSError):
            return None
        return cls(pid, None, process)

    def fileno(self) -> int | None:
        """The pidfd (readable once the process has exited), or None without pidfds."""
        return self._fd

    def signal(self, sig: int) -> bool:
        """Send ``sig``; False when the process is already gone."""
        if self._fd is not None and _CAN_PIDFD_SIGNAL:
            # Built-ins only on this path: it must work while the interpreter shuts down.
            try:
                signal.pidfd_send_signal(self._fd, sig)
            except (ProcessLookupError, PermissionError):
                return False
            return True
        try:
            if self._process is not None:
                self._process.send_signal(sig)
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError, psutil.Error):
            return False
        return True

    def alive(self) -> bool:
        """Whether the process is still running (a zombie counts as gone)."""
        if self._fd is not None:
            # poll, not select: select refuses descriptors numbered 1024 and above.
            poller = select.poll()
            poller.register(self._fd, select.POLLIN)
            return not poller.poll(0)
        process = self._process or _maybe_process(self.pid)
        if process is None:
            return False
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def close(self) -> None:
        """Release the pidfd (if we own it)."""
        fd, self._fd = self._fd, None
        if fd is not None and self._owns_fd:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        return f"<Member pid={self.pid}>"


def _own_uids() -> set[int]:
    return {os.getuid(), os.geteuid()}


def _real_uid(pid: int) -> int | None:
    """The real uid of ``pid`` from ``/proc/<pid>/status`` (None if gone or unreadable)."""
    block = _read(f"{_PROC}/{pid}/status")
    if block is None:
        return None
    start = block.find(b"\nUid:")
    if start < 0:
        return None
    try:
        return int(block[start + 5 :].split(None, 1)[0])
    except (IndexError, ValueError):
        return None


def _maybe_process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def descendants(pid: int) -> list[psutil.Process]:
    """A snapshot of every descendant of ``pid`` (empty when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def snapshot(pid: int) -> list[Member]:
    """Every descendant of ``pid``, pinned; those that vanished meanwhile are left out.

    Reads ``/proc/<pid>/stat`` directly where it exists: three times cheaper than psutil,
    and it still works while the interpreter shuts down and psutil is half torn down.
    """
    return survey(pid, None)[0]


def survey(pid: int, since: float | None) -> tuple[list[Member], set[int] | None]:
    """:func:`snapshot`, and from the same pass the PIDs of the other processes started at
    or after ``since`` (a start time as :func:`identity.start_time` gives it).

    Only those can carry a marker that ``pid`` handed down, so a marker scan needs to read
    only their environments. None instead of the PIDs where that cannot be told (no
    ``/proc``, or no ``since``): scan them all.
    """
    if not (_proc_fs() and capabilities().pidfd):
        pinned = (Member.pin(process) for process in descendants(pid))
        return [member for member in pinned if member is not None], None
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: list[Member] = []
    queue = list(children.get(pid, ()))
    while queue:
        child = queue.pop()
        queue.extend(children.get(child, ()))
        fd = open_pidfd(child)
        if fd is None:
            continue
        # The pidfd is pinned; the start time proves it names the process we listed.
        if _stat(child) == table[child]:
            found.append(Member(child, fd, None))
        else:
            os.close(fd)
    if since is None:
        return found, None
    me = os.getpid()
    young = {other for other, (_, started) in table.items() if started >= since and other != me}
    return found, young - {pid} - {member.pid for member in found}


def _stat(pid: int | str) -> tuple[int, int] | None:
    """``(parent PID, start time)`` from ``/proc/<pid>/stat``, or None if it is gone."""
    # Split only as far as the start time (field 22).
    fields = stat_fields(pid, _PROC, upto=20)
    if fields is None:
        return None
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _process_table() -> dict[int, tuple[int, int]]:
    """Every process's ``(parent PID, start time)``, by PID."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir(_PROC):
        if name.isdigit():
            entry = _stat(name)
            if entry is not None:
                table[int(name)] = entry
    return table


def claim_marked(pids: Iterable[int], env_name: str, token: str) -> list[Member]:
    """Pin each of ``pids`` that carries exactly our marker."""
    claimed = (Member.claim(pid, env_name, token) for pid in pids)
    return [member for member in claimed if member is not None]


def signal_all(members: Iterable[Member], sig: int) -> set[int]:
    """Send ``sig`` to each member still alive; the PIDs that received it."""
    return {member.pid for member in members if member.signal(sig)}


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False when the group is empty or not ours."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_gone(
    members: Iterable[Member],
    timeout: float,
    clock: Callable[[], float] = monotonic,
) -> list[Member]:
    """Wait up to ``timeout`` seconds for every member to exit; the survivors.

    Woken by the members' pidfds, so it returns the moment the last one exits; members
    without a pidfd (old kernels, other systems) are checked on a short backoff.
    """
    pending = list(members)
    deadline = clock() + max(0.0, timeout)
    poller = select.poll()
    watched: dict[int, Member] = {}
    blind: list[Member] = []
    for member in pending:
        fd = member.fileno()
        if fd is None:
            blind.append(member)
        else:
            watched[fd] = member
            poller.register(fd, select.POLLIN)
    pause = 0.001
    while watched or blind:
        blind = [member for member in blind if member.alive()]
        remaining = deadline - clock()
        if remaining <= 0 or not (watched or blind):
            break
        budget = min(remaining, pause) if blind else remaining
        for fd, _ in poller.poll(_milliseconds(wait_slice(budget))):
            poller.unregister(fd)
            watched.pop(fd, None)
        pause = min(pause * 2, 0.05)
    return [*watched.values(), *blind]


def _milliseconds(seconds: float) -> int:
    # Round up: poll() takes whole milliseconds and waking late by <1 ms costs nothing.
    return max(0, math.ceil(seconds * 1000))
