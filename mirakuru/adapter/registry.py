"""This process's running executors, so that none outlives the interpreter."""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["forget", "install", "kill_all", "tokens", "track"]


class Killable(Protocol):
    """What the registry needs of an executor."""

    _uuid: str

    def kill(self, wait: bool = True, sig: int | None = None) -> object:
        """Kill the executor's process tree."""
        ...


_lock = threading.Lock()
# Weak references: an executor that is collected kills its own tree in __del__.
_running: weakref.WeakValueDictionary[int, Killable] = weakref.WeakValueDictionary()
_tokens: set[str] = set()
_installed = False


def track(executor: Killable) -> None:
    """Remember a freshly started executor."""
    with _lock:
        _running[id(executor)] = executor
        _tokens.add(executor._uuid)


def forget(executor: Killable) -> None:
    """Forget an executor whose process tree is gone."""
    with _lock:
        _running.pop(id(executor), None)


def tokens() -> set[str]:
    """Every ownership token this process has handed out."""
    with _lock:
        return set(_tokens)


def kill_all() -> None:
    """Kill every executor still running (through its own overridable ``kill``)."""
    with _lock:
        executors = list(_running.values())
    for executor in executors:
        try:
            executor.kill()
        except Exception:  # noqa: S112 - at exit, keep going: the next tree matters too
            continue


def install(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at interpreter exit (once)."""
    global _installed  # noqa: PLW0603 - one process-wide hook
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(cleanup)
