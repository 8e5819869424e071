"""Who listens on a TCP port: for saying whose service is in the way of ours."""

from __future__ import annotations

import contextlib
import os

import psutil

from mirakuru.adapter.capabilities import capabilities

__all__ = ["UNKNOWN", "describe_listener", "listener_pids"]

#: What we say when the listening socket belongs to nobody we can see.
UNKNOWN = "unknown (another user's or another network namespace's)"
_LISTEN = "0A"
_LONGEST = 200


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) < 10 or fields[3] != _LISTEN:
                        continue
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def _pids_from_proc(port: int) -> list[int]:
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return []
    found: list[int] = []
    with os.scandir("/proc") as processes:
        for entry in processes:
            if entry.name.isdigit() and _holds(entry.name, wanted):
                found.append(int(entry.name))
    return sorted(found)


def _holds(pid: str, wanted: set[str]) -> bool:
    # Other users' descriptors are unreadable: those listeners stay unknown. The iterator
    # is closed on the early return too, or it would leak a directory handle.
    with contextlib.suppress(OSError), os.scandir(f"/proc/{pid}/fd") as descriptors:
        for fd in descriptors:
            with contextlib.suppress(OSError):
                if os.readlink(fd.path) in wanted:
                    return True
    return False


def _pids_from_psutil(port: int) -> list[int]:
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return sorted(
        {
            connection.pid
            for connection in connections
            if connection.pid is not None
            and connection.status == psutil.CONN_LISTEN
            and getattr(connection.laddr, "port", None) == port
        }
    )


def listener_pids(port: int) -> list[int]:
    """The PIDs we can see holding a listening TCP socket on ``port`` (any address)."""
    return _pids_from_proc(port) if capabilities().proc_fs else _pids_from_psutil(port)


def describe_listener(port: int) -> str:
    """``PID n (command line)`` for each visible listener on ``port``, else :data:`UNKNOWN`."""
    described: list[str] = []
    for pid in listener_pids(port):
        try:
            command = " ".join(psutil.Process(pid).cmdline()) or "?"
            if len(command) > _LONGEST:
                command = command[: _LONGEST - 3] + "..."
        except psutil.Error:
            command = "?"
        described.append(f"PID {pid} ({command})")
    return ", ".join(described) or UNKNOWN
