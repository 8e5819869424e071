"""Kill whatever a worker run left behind, found by its environment token.

The harness is standard-library only (no psutil), so this reads
``/proc/<pid>/environ`` directly.  Executors put services in new sessions, so
killing the worker's process group alone would miss them; the inherited token
does not.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _carries(pid: int, needle: bytes) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or a kernel thread
        return False
    return needle in environ.split(b"\0")


def _is_zombie(pid: int) -> bool:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command, which may hold spaces.
    return stat.rpartition(")")[2].split()[0] == "Z"


def find(var: str, token: str) -> list[int]:
    """Live pids whose environment has ``var=token``."""
    needle = f"{var}={token}".encode()
    me = os.getpid()
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid != me and _carries(pid, needle) and not _is_zombie(pid):
            pids.append(pid)
    return pids


def reap(var: str, token: str) -> int:
    """SIGKILL every process carrying the token; return how many there were."""
    killed: set[int] = set()
    for _ in range(10):  # a parent may fork while we sweep: repeat until clean
        pids = find(var, token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return len(killed)
