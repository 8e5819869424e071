"""This process's running executors, so that none outlives the interpreter or the process.

At interpreter exit every executor still running is killed (through its own overridable
``kill``), then every process still carrying one of our tokens. Each started service is
pinned (:mod:`~mirakuru.adapter.spawn.identity`: start time, group, its own cgroup where possible)
and registered with the :mod:`~mirakuru.adapter.guard.watchdog`, which kills it if this process
dies without running its exit hooks (SIGKILL, crash). After ``os.fork()`` the child owns
none of this: it forgets every executor it inherited, so neither its exit hooks nor its
garbage collector touch the parent's services.
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

from mirakuru.adapter.guard import watchdog
from mirakuru.adapter.spawn import identity
from mirakuru.adapter.spawn.process import open_pidfd

__all__ = [
    "exiting",
    "forget",
    "install",
    "kill_all",
    "owned_here",
    "running",
    "tokens",
    "track",
]


class Killable(Protocol):
    """What the registry needs of an executor."""

    _uuid: str
    process: subprocess.Popen[Any] | None

    def kill(self, wait: bool = True, sig: int | None = None) -> object:
        """Kill the executor's process tree."""
        ...


# Re-entrant: a finalizer or signal handler that stops an executor (forget) may run on a
# thread that is inside track() or running(); every section is a few independent dict and
# set operations, consistent between any two of them.
_lock = threading.RLock()
# Weak references: an executor that is collected kills its own tree in __del__.
_running: weakref.WeakValueDictionary[int, Killable] = weakref.WeakValueDictionary()
_tokens: set[str] = set()
# The Popen each running executor was tracked with (its identity is released on forget).
_processes: dict[int, subprocess.Popen[Any]] = {}
_installed = False
_OWNER = "_mirakuru_owner_pid"
_exiting = False


def track(executor: Killable) -> None:
    """Remember a freshly started executor, pin its service and tell the watchdog about it."""
    process = executor.process
    group = None
    pinned = None
    if process is not None:
        pinned = identity.pin(process)
        if pinned is not None and pinned.pgid == pinned.pid:
            group = pinned.pgid  # only a group the service leads is ours to kill whole
    with contextlib.suppress(AttributeError, TypeError):
        # On the executor itself: a weak reference is already cleared when the cyclic
        # collector finalizes it, and a forked child inherits this value unchanged.
        executor.__dict__[_OWNER] = os.getpid()
    with _lock:
        _running[id(executor)] = executor
        _tokens.add(executor._uuid)
        if process is not None:
            _processes[id(executor)] = process
    pidfd = open_pidfd(pinned.pid) if pinned is not None else None
    try:
        cgroup = pinned.group.path if pinned is not None and pinned.group else None
        started = pinned.started if pinned is not None else None
        watchdog.register(executor._uuid, group, cgroup, pidfd, started)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def forget(executor: Killable) -> None:
    """Forget an executor whose process tree is gone (its cgroup is removed)."""
    with _lock:
        if _running.get(id(executor)) is executor:
            del _running[id(executor)]
        process = _processes.pop(id(executor), None)
    identity.forget(process)
    watchdog.unregister(executor._uuid)


def owned_here(executor: object) -> bool:
    """Whether this very process started ``executor``'s service (False in a forked child)."""
    owner = getattr(executor, "__dict__", {}).get(_OWNER)
    return owner is None or owner == os.getpid()


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


def _forget_after_fork() -> None:
    """In a forked child: the parent's executors, tokens and services are not ours."""
    global _lock  # noqa: PLW0603 - the parent's lock may have been held at fork
    _lock = threading.RLock()
    _running.clear()
    _tokens.clear()
    _processes.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _at_exit(cleanup: Callable[[], None]) -> None:
    global _exiting  # noqa: PLW0603 - one process-wide flag
    _exiting = True
    with contextlib.suppress(Exception):
        cleanup()
    with contextlib.suppress(Exception):
        watchdog.release_at_exit()
