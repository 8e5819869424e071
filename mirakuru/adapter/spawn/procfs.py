"""Reading the kernel's small text files (``/proc``, cgroupfs) with ``os`` calls only.

One reader for all of them: ``open()`` may already be gone while the interpreter shuts
down, and these files are read on every start and stop, so each costs as few system
calls as possible.
"""

from __future__ import annotations

import os

__all__ = ["forks_so_far", "read", "stat_fields"]

#: One read's worth: a ``stat`` line and most environment blocks fit in a single read.
_CHUNK = 1 << 16


def read(path: str) -> bytes | None:
    """The whole file, or None if it cannot be read (say, the process is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        first = os.read(fd, _CHUNK)
        if len(first) < _CHUNK:
            # These files answer a read with all they have up to its size: a short read is
            # the end, and the second read that would confirm it is one syscall per process.
            return first
        chunks = [first]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_fields(pid: int | str, proc: str = "/proc", upto: int = -1) -> list[bytes] | None:
    """The fields of ``<proc>/<pid>/stat`` after the command name (state first), or None.

    With ``upto``, the fields past that index stay unsplit in the last one.
    """
    data = read(f"{proc}/{pid}/stat")
    if data is None:
        return None
    # The command name may hold spaces and parentheses: split after its last ")".
    return data[data.rfind(b")") + 2 :].split(b" " if upto >= 0 else None, upto)


def forks_so_far() -> int | None:
    """How many tasks the kernel has created since boot (``processes`` in ``/proc/stat``)."""
    data = read("/proc/stat")
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
