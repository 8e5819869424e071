"""Which platform fast paths this process uses, decided once per process.

Every Linux-only mechanism (pidfds, inotify, ``/proc``, abstract unix sockets, cgroups) has a
POSIX fallback. ``MIRAKURU_PORTABLE=1`` in the environment forces every fallback even where
the fast path exists, so the portable code can be tested on Linux; :func:`capabilities`
reports the choice for bug reports and the docs.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import sys

import attrs

__all__ = ["PORTABLE_ENV", "Capabilities", "capabilities", "portable_mode"]

PORTABLE_ENV = "MIRAKURU_PORTABLE"


def portable_mode() -> bool:
    """True when ``MIRAKURU_PORTABLE`` asks for the portable fallbacks."""
    return os.environ.get(PORTABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@attrs.frozen
class Capabilities:
    """The fast paths in use in this process (False: the portable fallback is used)."""

    portable: bool
    """``MIRAKURU_PORTABLE`` forced every fallback."""
    pidfd: bool
    """Process exits are seen through pidfds (fallback: polling the child)."""
    inotify: bool
    """Directory watches use inotify (fallback: kqueue where it exists, else polling stat)."""
    kqueue: bool
    """``select.kqueue`` is available and used where inotify is not."""
    proc_fs: bool
    """The process table is read from ``/proc`` (fallback: psutil)."""
    abstract_socket: bool
    """sd_notify uses an abstract unix socket (fallback: a socket file in a private dir)."""
    cgroup: bool = False
    """Each service gets a cgroup v2 of its own (fallback: groups, start times, markers)."""

    def as_table(self) -> dict[str, str]:
        """Capability name → "fast path" or "fallback", for reports."""
        return {
            field.name: ("fast path" if getattr(self, field.name) else "fallback")
            for field in attrs.fields(type(self))
            if field.name != "portable"
        }


def _linux() -> bool:
    return sys.platform.startswith("linux")


@functools.cache
def capabilities() -> Capabilities:
    """Decide, once per process, which fast paths exist and are allowed."""
    portable = portable_mode()
    linux = _linux()
    fast = linux and not portable
    return Capabilities(
        portable=portable,
        pidfd=fast and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"),
        inotify=fast,
        kqueue=not fast and hasattr(select, "kqueue"),
        proc_fs=fast and os.path.isdir("/proc/self"),
        abstract_socket=fast,
        cgroup=fast and _cgroup_available(),
    )


def _cgroup_available() -> bool:
    from mirakuru.adapter.spawn import cgroup  # probes the file system: only on demand

    return cgroup.available()
