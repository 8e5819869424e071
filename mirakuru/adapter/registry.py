"""This process's running executors, so that none outlives the interpreter or the process.

At interpreter exit every executor still running is killed (through its own overridable
``kill``), then every process still carrying one of our tokens. Each started service is
also registered with the :mod:`~mirakuru.adapter.watchdog`, which kills it if this
process dies without running its exit hooks (SIGKILL, crash).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from mirakuru.adapter import watchdog

__all__ = ["exiting", "forget", "install", "kill_all", "running", "tokens", "track"]


class Killable(Protocol):
    """What the registry needs of an executor."""

    _uuid: str
    process: subprocess.Popen[Any] | None

    def kill(self, wait: bool = True, sig: int | None = None) -> object:
        """Kill the executor's process tree."""
        ...


_lock = threading.Lock()
# Weak references: an executor that is collected kills its own tree in __del__.
_running: weakref.WeakValueDictionary[int, Killable] = weakref.WeakValueDictionary()
_tokens: set[str] = set()
_installed = False
_exiting = False


def track(executor: Killable) -> None:
    """Remember a freshly started executor and tell the watchdog about its service."""
    process = executor.process
    group = None
    if process is not None:
        with contextlib.suppress(OSError):
            # Only a group the service leads is ours to kill whole.
            group = process.pid if os.getpgid(process.pid) == process.pid else None
    with _lock:
        _running[id(executor)] = executor
        _tokens.add(executor._uuid)
    watchdog.register(executor._uuid, group)


def forget(executor: Killable) -> None:
    """Forget an executor whose process tree is gone."""
    with _lock:
        if _running.get(id(executor)) is executor:
            del _running[id(executor)]
    watchdog.unregister(executor._uuid)


def running() -> list[Killable]:
    """The executors started and not yet stopped."""
    with _lock:
        return list(_running.values())


def tokens() -> set[str]:
    """Every ownership token this process has handed out."""
    with _lock:
        return set(_tokens)


def exiting() -> bool:
    """Whether the interpreter is running its exit hooks (be quick, start no threads)."""
    return _exiting


def kill_all() -> None:
    """Kill every executor still running (through its own overridable ``kill``)."""
    for executor in running():
        try:
            executor.kill()
        except Exception:  # noqa: S112 - keep going: the next tree matters too
            continue


def install(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at interpreter exit (once)."""
    global _installed  # noqa: PLW0603 - one process-wide hook
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(_at_exit, cleanup)


def _at_exit(cleanup: Callable[[], None]) -> None:
    global _exiting  # noqa: PLW0603 - one process-wide flag
    _exiting = True
    with contextlib.suppress(Exception):
        cleanup()
