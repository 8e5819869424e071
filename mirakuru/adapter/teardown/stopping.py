"""Stopping one executor's run: the marked processes, the stop and kill sequences, and the
gate that lets stop() from another thread cut a waiting start() short."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from mirakuru.adapter.posix import SIGKILL
from mirakuru.adapter.run.run import Run
from mirakuru.adapter.teardown import terminate, tree
from mirakuru.adapter.teardown.signalling import KILL_WAIT, KillPolicy, Leader, SignalMarked
from mirakuru.adapter.teardown.terminate import StopReport
from mirakuru.core.budget import unlimited

__all__ = [
    "START_OWNER",
    "STOP_START_GRACE",
    "StartGate",
    "kill_leftovers",
    "kill_run",
    "signal_claimed",
    "signal_leader",
    "start_owner",
    "stop_run",
    "stop_stand_in",
]

#: How long stop() from another thread lets a waiting start() give up by itself.
STOP_START_GRACE = 0.5


def signal_claimed(members: list[tree.Member], sig: int) -> set[int]:
    """Signal the pinned members and release their pins; the PIDs signalled."""
    try:
        return tree.signal_all(members, sig)
    finally:
        for member in members:
            member.close()


def stop_run(
    process: subprocess.Popen[Any],
    pidfd: int | None,
    policy: KillPolicy,
    signal_marked: SignalMarked,
    claim: Callable[[Iterable[int]], list[tree.Member]],
) -> StopReport:
    """Stop signal, grace period, escalation and reaping for the run's whole tree."""
    leader = Leader(process, pidfd)
    return terminate.terminate(
        leader, policy, signal_marked, claim, marker_hook=_user_marker_hook(signal_marked)
    )


def _user_marker_hook(signal_marked: SignalMarked) -> bool:
    """Whether ``signal_marked`` may run a user's ``_kill_all_kids`` (then it always runs).

    The published ``stop()`` always called ``_kill_all_kids``; a subclass that overrides it
    must still be called, even where a sealed cgroup makes our own marker walk needless.
    The hook is the stock one when the class that defines the executor's ``_kill_all_kids``
    also defines the ``_signal_marked`` we were given (a user's subclass defines only the
    former); anything else counts as a user's hook.
    """
    owner = getattr(signal_marked, "__self__", None)
    function = getattr(signal_marked, "__func__", None)
    if owner is None or function is None:
        return True
    hook_home = _defined_in(type(owner), "_kill_all_kids")
    walk_home = _defined_in(type(owner), function.__name__)
    return (
        hook_home is None
        or hook_home is not walk_home
        or vars(walk_home).get(function.__name__) is not function
    )


def _defined_in(cls: type, name: str) -> type | None:
    """The first class in ``cls``'s MRO that defines ``name`` itself."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def kill_run(
    process: subprocess.Popen[Any],
    pidfd: int | None,
    sig: int,
    signal_marked: SignalMarked,
    claim: Callable[[Iterable[int]], list[tree.Member]],
    wait: bool,
) -> StopReport:
    """The kill signal to the whole tree; with ``wait`` reaped (bounded), else in the background."""
    leader = Leader(process, pidfd)
    report = terminate.kill_tree(leader, sig, signal_marked, claim, KILL_WAIT if wait else None)
    if not wait:
        terminate.reap_later(process)
    return report


def signal_leader(process: subprocess.Popen[Any] | None, sig: int) -> None:
    """Signal the child while another thread owns its run (no pidfd: the owner may close it)."""
    if process is not None:
        # Popen's own guard against a reaped PID protects us here.
        Leader(process, None).signal(sig)


def stop_stand_in(process: subprocess.Popen[Any], sig: int, grace: float | None) -> None:
    """A Popen stand-in (a test's mock) is driven only through its own methods."""
    process.send_signal(sig)
    process.wait(grace)


def kill_leftovers(marker: str, tokens: set[str]) -> None:
    """Kill every process still carrying one of ``tokens`` (exactly) in ``marker``."""
    for pid, token in tree.processes_with_any(marker, tokens).items():
        member = tree.Member.claim(pid, marker, token)
        if member is not None:
            member.signal(SIGKILL)
            member.close()


#: Set by an ``astart()`` for its task: the task and the worker threads it hands work to
#: (they copy its context) are one starter, whichever thread each step runs on.
START_OWNER: ContextVar[object | None] = ContextVar("mirakuru_start_owner", default=None)


def start_owner() -> object:
    """Who is running here: the ``astart()`` whose context this is, else this thread."""
    owner = START_OWNER.get()
    return owner if owner is not None else threading.get_ident()


class StartGate:
    """Which thread (or ``astart()`` task) waits in start(), so stop() elsewhere can cut the
    wait short."""

    def __init__(self) -> None:
        self.starter: object | None = None
        # Made per waiting start(), not per executor: most executors never need one.
        self._done: threading.Event | None = None

    def enter(self) -> None:
        """This thread begins waiting for readiness."""
        self._done = threading.Event()
        self.starter = start_owner()

    def leave(self) -> None:
        """The wait ended, however it ended."""
        self.starter = None
        if self._done is not None:
            self._done.set()

    def _wait_done(self, timeout: float | None) -> bool:
        done = self._done
        # Event.wait() overflows on huge timeouts; None is its own "no limit".
        return done is None or done.wait(None if unlimited(timeout) else timeout)

    def other_thread_starting(self) -> bool:
        """Whether a thread other than this one waits in start()."""
        return self.starter is not None and self.starter != start_owner()

    def wait_for_other(self, lock: threading.RLock, remaining: float | None) -> None:
        """Wait (lock released, bounded) for the other thread's start() to end."""
        lock.release()
        try:
            self._wait_done(None if remaining is None else remaining + KILL_WAIT)
        finally:
            lock.acquire()

    def interrupt(self, run: Run, lock: threading.RLock, kill: Callable[[], None]) -> None:
        """Mark the run stopping, wake the starter, and kill its process if it is slow to go.

        The starter may be inside a slow check: killing its process makes the check end.
        """
        run.mark_stopping()
        lock.release()
        try:
            if not self._wait_done(STOP_START_GRACE):
                kill()
                self._wait_done(KILL_WAIT)
        finally:
            lock.acquire()
