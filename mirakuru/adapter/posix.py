"""Platform facts, importable on every system (published as :mod:`mirakuru.compat`).

Also the one platform check the facade runs before spawning: mirakuru starts every service in
a session of its own and stops it by process group, which needs POSIX (Linux, macOS, BSD).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys

__all__ = ["SIGKILL", "UnsupportedPlatform", "check_platform", "missing_platform_support"]

#: The signal that cannot be ignored; Windows has none, and its SIGTERM already terminates.
SIGKILL: signal.Signals = getattr(signal, "SIGKILL", signal.SIGTERM)

#: What starting and stopping a process tree needs, as ``module.name``.
_REQUIRED = (
    ("os", "setsid"),
    ("os", "killpg"),
    ("os", "getpgid"),
    ("os", "WNOHANG"),
    ("signal", "SIGKILL"),
)
_REQUIRED_MODULES = ("fcntl",)


class UnsupportedPlatform(OSError):
    """This system lacks what mirakuru needs to start and stop a process tree (e.g. Windows)."""


def missing_platform_support() -> tuple[str, ...]:
    """The POSIX names this interpreter lacks, empty where mirakuru can run."""
    modules = {"os": os, "signal": signal}
    missing = [
        f"{module}.{name}" for module, name in _REQUIRED if not hasattr(modules[module], name)
    ]
    missing += [name for name in _REQUIRED_MODULES if not _importable(name)]
    return tuple(missing)


def check_platform() -> None:
    """Raise :class:`UnsupportedPlatform` naming what is missing, before anything is spawned."""
    missing = missing_platform_support()
    if sys.platform == "win32" or os.name != "posix" or missing:
        lacking = f" (missing: {', '.join(missing)})" if missing else ""
        raise UnsupportedPlatform(
            f"mirakuru runs services on POSIX systems (Linux, macOS, BSD) only; "
            f"sys.platform {sys.platform!r} has no process sessions and groups to start and "
            f"stop a process tree with{lacking}. See the 'Platforms' page of the docs."
        )


def _importable(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


UnsupportedPlatform.__module__ = "mirakuru.compat"  # its published home, in tracebacks
