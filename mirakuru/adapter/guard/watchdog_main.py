"""The watchdog program: kills an owner's services once the owner is gone, however it died.

Run as ``python -I -S watchdog_main.py`` with its standard input being one end of a unix
``SOCK_SEQPACKET`` pair whose other end only the owner holds. One command per datagram:

``+ <token> <pgid or -> <cgroup or ->`` a service was started, with a pidfd of its leader
                                        attached (``SCM_RIGHTS``) where the kernel has them;
``- <token>``                           that service is gone;
``q``                                   exit without killing anything (the owner opted out).

End of file means the owner died (SIGKILL, crash, ``os._exit``). Then, for each registered
service: its cgroup is killed whole (membership of our own cgroup is proof of ownership);
while the leader is alive (its pidfd says so, so its PID and group ID cannot have been
recycled) its descendants are pinned, its group and then they get SIGKILL; and every process
still carrying a registered token gets SIGKILL too. SIGTERM does the same (whoever tears down
the owner's tree is tearing down its services too). Standard library only, so that it starts
in a few milliseconds without ``site``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time

_PROC = "/proc"
_MARKER = b"mirakuru_uuid="
#: Passes over the process table: a process forked while we killed is found by the next.
_ROUNDS = 4
#: How long an emptied cgroup may take to become removable.
_CGROUP_WAIT = 2.0


class _OwnerGone(Exception):
    """Raised from the SIGTERM handler to leave the read loop."""


class _Service:
    __slots__ = ("cgroup", "pgid", "pidfd")

    def __init__(self, pgid: int | None, cgroup: str | None, pidfd: int | None) -> None:
        self.pgid = pgid
        self.cgroup = cgroup
        self.pidfd = pidfd


def _on_term(signum: int, frame: object) -> None:
    raise _OwnerGone


def _read_commands(sock: socket.socket, registered: dict[bytes, _Service]) -> bool:
    """Apply commands until end of file (True) or ``q`` (False)."""
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 65536, 8)
        if not message:
            return True
        parts = message.split()
        pidfd = fds[0] if fds else None
        for extra in fds[1:]:
            _close(extra)
        if parts == [b"q"]:
            return False
        if parts[:1] == [b"+"] and len(parts) == 4:
            old = registered.pop(parts[1], None)
            if old is not None:
                _close(old.pidfd)
            group = int(parts[2]) if parts[2].isdigit() else None
            where = parts[3].decode(errors="replace") if parts[3] != b"-" else None
            registered[parts[1]] = _Service(group, where, pidfd)
            continue
        _close(pidfd)
        if parts[:1] == [b"-"] and len(parts) == 2:
            old = registered.pop(parts[1], None)
            if old is not None:
                _close(old.pidfd)


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _use_proc() -> bool:
    return os.environ.get("MIRAKURU_WATCHDOG_PROC", "1") != "0" and os.path.isdir(_PROC)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _alive(pidfd: int) -> bool:
    try:
        ready, _, _ = select.select([pidfd], [], [], 0)
    except (OSError, ValueError):
        return False
    return not ready


def _pid_of(pidfd: int) -> int | None:
    info = _read(f"{_PROC}/self/fdinfo/{pidfd}")
    for line in (info or b"").splitlines():
        if line.startswith(b"Pid:"):
            value = int(line.split()[1])
            return value if value > 0 else None
    return None


def _stat(pid: int | str) -> tuple[int, int] | None:
    data = _read(f"{_PROC}/{pid}/stat")
    if data is None:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _descendants(pid: int) -> list[int]:
    """Pidfds of the descendants of ``pid``, each pinned and re-checked by start time."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir(_PROC):
        if name.isdigit():
            entry = _stat(name)
            if entry is not None:
                table[int(name)] = entry
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    pinned: list[int] = []
    queue = list(children.get(pid, ()))
    while queue:
        child = queue.pop()
        queue.extend(children.get(child, ()))
        try:
            fd = os.pidfd_open(child)
        except OSError:
            continue
        if _stat(child) == table[child]:
            pinned.append(fd)
        else:
            os.close(fd)
    return pinned


def _kill_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(fd, signal.SIGKILL)


def _kill_service(service: _Service, proc: bool) -> None:
    """Kill one service by what it cannot erase: its cgroup, its pinned leader and group."""
    if service.cgroup is not None:
        with contextlib.suppress(OSError), open(f"{service.cgroup}/cgroup.kill", "w") as handle:
            handle.write("1")
    fd = service.pidfd
    if fd is None or not _alive(fd):
        return
    family = _descendants(_pid_of(fd) or -1) if proc else []
    try:
        leader = _pid_of(fd) if proc else None
        # The leader is alive and pinned, so the group it leads cannot be someone else's.
        if service.pgid is not None and service.pgid > 1 and leader == service.pgid:
            with contextlib.suppress(OSError):
                os.killpg(service.pgid, signal.SIGKILL)
        _kill_fd(fd)
        for member in family:
            _kill_fd(member)
    finally:
        for member in family:
            _close(member)


def _token_of(block: bytes, registered: dict[bytes, _Service]) -> bytes | None:
    """The registered token this environment carries exactly, if any."""
    for entry in block.split(b"\0"):
        if entry.startswith(_MARKER):
            token = entry[len(_MARKER) :]
            return token if token in registered else None
    return None


def _same_user(pid: int | str) -> bool:
    """Whether ``pid`` runs with our real uid: a token copied into another user's process
    does not make it ours (our services that changed user die with their cgroup)."""
    for line in (_read(f"{_PROC}/{pid}/status") or b"").splitlines():
        if line.startswith(b"Uid:"):
            fields = line.split()
            return len(fields) > 1 and fields[1].isdigit() and int(fields[1]) == os.getuid()
    return False


def _kill_marked(pid: int, registered: dict[bytes, _Service]) -> None:
    """SIGKILL ``pid`` through a pidfd, after re-checking its token and user (no recycled
    PID, no stranger)."""
    fd = os.pidfd_open(pid)
    try:
        marked = _token_of(_read(f"{_PROC}/{pid}/environ") or b"", registered) is not None
        if marked and _same_user(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def _sweep(registered: dict[bytes, _Service]) -> int:
    """One pass over the process table: kill the processes carrying a token; how many."""
    me = os.getpid()
    found = 0
    for name in os.listdir(_PROC):
        if not name.isdigit() or int(name) == me:
            continue
        if _token_of(_read(f"{_PROC}/{name}/environ") or b"", registered) is None:
            continue
        if not _same_user(name):
            continue  # a stranger carrying a copied token: not ours, and never killed
        found += 1
        with contextlib.suppress(OSError):
            _kill_marked(int(name), registered)
    return found


def _remove_cgroups(registered: dict[bytes, _Service]) -> None:
    deadline = time.monotonic() + _CGROUP_WAIT
    for service in registered.values():
        if service.cgroup is None:
            continue
        while True:
            try:
                os.rmdir(service.cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)  # the kernel empties a killed cgroup within milliseconds


def _kill_registered(registered: dict[bytes, _Service]) -> None:
    if not registered:
        return
    proc = _use_proc()
    for service in registered.values():
        with contextlib.suppress(Exception):
            _kill_service(service, proc)
    if proc and hasattr(os, "pidfd_open"):
        for _ in range(_ROUNDS):
            if not _sweep(registered):
                break
    _remove_cgroups(registered)


def main() -> None:
    """Watch the socket; when the owner is gone, kill what it registered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    registered: dict[bytes, _Service] = {}
    sock = socket.socket(fileno=0)
    try:
        owner_gone = _read_commands(sock, registered)
    except _OwnerGone:
        owner_gone = True
    except OSError:
        owner_gone = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if owner_gone:
        _kill_registered(registered)


if __name__ == "__main__":
    main()
