"""The watchdog program: kills an owner's services once the owner is gone, however it died.

Run as ``python -I -S watchdog_main.py`` with its standard input being the read end of a
pipe whose only writer is the owner. It reads one command per line:

``+ <token> <pgid or ->``  a service was started (its ownership token and process group);
``- <token>``              that service is gone;
``q``                      exit without killing anything (the owner opted out).

End of file means the owner died (SIGKILL, crash, ``os._exit``): every registered group
that still holds a process carrying its token gets SIGKILL, and so does every process
carrying a registered token, then the watchdog exits. SIGTERM does the same (whoever tears
down the owner's tree is tearing down its services too). Standard library only, so that
it starts in a few milliseconds without ``site``.
"""

from __future__ import annotations

import os
import signal
import sys

_PROC = "/proc"
_MARKER = b"mirakuru_uuid="
#: Passes over the process table: a process forked while we killed is found by the next.
_ROUNDS = 4


class _OwnerGone(Exception):
    """Raised from the SIGTERM handler to leave the read loop."""


def _on_term(signum: int, frame: object) -> None:
    raise _OwnerGone


def _read_commands(registered: dict[bytes, int | None]) -> bool:
    """Apply commands until end of file (True) or ``q`` (False)."""
    stream = sys.stdin.buffer
    for line in stream:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == b"q":
            return False
        if parts[0] == b"+" and len(parts) == 3:
            registered[parts[1]] = int(parts[2]) if parts[2].isdigit() else None
        elif parts[0] == b"-" and len(parts) == 2:
            registered.pop(parts[1], None)
    return True


def _environ(pid: str) -> bytes:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _token_of(block: bytes, registered: dict[bytes, int | None]) -> bytes | None:
    """The registered token this environment carries exactly, if any."""
    for entry in block.split(b"\0"):
        if entry.startswith(_MARKER):
            token = entry[len(_MARKER) :]
            return token if token in registered else None
    return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _kill_pinned(pid: int, registered: dict[bytes, int | None]) -> None:
    """SIGKILL ``pid`` through a pidfd, after re-checking its token (no recycled PID)."""
    opener = getattr(os, "pidfd_open", None)
    sender = getattr(signal, "pidfd_send_signal", None)
    if opener is None or sender is None:
        os.kill(pid, signal.SIGKILL)
        return
    fd = opener(pid)
    try:
        if _token_of(_environ(str(pid)), registered) is not None:
            sender(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def _sweep(registered: dict[bytes, int | None]) -> int:
    """One pass: kill our groups and our marked processes; how many were found."""
    me = os.getpid()
    found = 0
    groups: set[int] = set()
    for name in os.listdir(_PROC):
        if not name.isdigit() or int(name) == me:
            continue
        token = _token_of(_environ(name), registered)
        if token is None:
            continue
        pid = int(name)
        found += 1
        # A group still holding a process with its token was never emptied, so its ID
        # cannot have been recycled: it is safe to kill whole.
        group = registered[token]
        if group is not None and group > 1 and _pgid(pid) == group:
            groups.add(group)
        try:
            _kill_pinned(pid, registered)
        except OSError:
            continue
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            continue
    return found


def _kill_registered(registered: dict[bytes, int | None]) -> None:
    if not registered:
        return
    if not os.path.isdir(_PROC):
        # No process table to verify against: the groups are the best we can do.
        for group in registered.values():
            if group is not None:
                try:
                    os.killpg(group, signal.SIGKILL)
                except OSError:
                    continue
        return
    for _ in range(_ROUNDS):
        if not _sweep(registered):
            return


def main() -> None:
    """Watch the pipe; when the owner is gone, kill what it registered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    registered: dict[bytes, int | None] = {}
    try:
        owner_gone = _read_commands(registered)
    except _OwnerGone:
        owner_gone = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if owner_gone:
        _kill_registered(registered)


if __name__ == "__main__":
    main()
