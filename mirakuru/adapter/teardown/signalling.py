"""What a stop works with: the kill policy, our direct child (the leader) and the family of
processes pinned around it, and the one pass that signals them all.

The leader's process group is signalled only while the leader is unreaped (so the group ID
cannot have been recycled); every other process is pinned as a
:class:`~mirakuru.adapter.teardown.tree.Member` before it is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from mirakuru.adapter import interrupts
from mirakuru.adapter.posix import SIGKILL
from mirakuru.adapter.spawn import identity
from mirakuru.adapter.spawn.process import send_signal
from mirakuru.adapter.teardown import tree
from mirakuru.adapter.teardown.tree import Member

__all__ = [
    "KILL_WAIT",
    "MAX_GRACE",
    "STRAGGLER_GRACE",
    "KillPolicy",
    "Leader",
    "SignalMarked",
    "cgroup_members",
    "contained",
    "deliver",
    "family",
    "settled",
    "signal_name",
    "survey",
]

#: How long processes sent the kill signal may take to vanish before we stop waiting.
KILL_WAIT = 10.0
#: The grace period used when none is set (``timeout=None``): long, but never unbounded.
MAX_GRACE = 3600.0
#: How long descendants may outlive their exited leader after the stop signal.
STRAGGLER_GRACE = 0.5
#: How long stop() waits for a pending cgroup move before walking ``/proc`` instead.
MOVE_WAIT = 0.001
#: How long stop() waits, once the leader is reaped, for the cgroup thread to finish its move.
SETTLE_WAIT = 1.0

#: ``signal_marked(sig, already)``: send ``sig`` to every process carrying our marker except
#: those for which ``already(pid)`` holds, and return the PIDs of all marked processes found.
SignalMarked = Callable[[int, Callable[[int], bool]], set[int]]


def signal_name(sig: int) -> str:
    """``SIGTERM`` for 15; the bare number for anything that is not a known signal."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


@attrs.frozen(slots=True)
class KillPolicy:
    """How a tree is stopped: the polite signal, the grace period, the forceful signal."""

    stop_signal: int = signal.SIGTERM
    kill_signal: int = SIGKILL
    grace: float | None = None
    kill_wait: float = KILL_WAIT

    @property
    def grace_seconds(self) -> float:
        """The grace period actually waited: ``grace``, or :data:`MAX_GRACE` for None."""
        return MAX_GRACE if self.grace is None else self.grace


class Leader:
    """Our direct child: signalled through its pidfd, its group only while it is unreaped."""

    def __init__(self, process: subprocess.Popen[Any], pidfd: int | None) -> None:
        self.process = process
        self.pidfd = pidfd

    @property
    def pid(self) -> int:
        """The child's PID (also its process group ID when it leads a new session)."""
        return self.process.pid

    def running(self) -> bool:
        """Whether the child has not been reaped (it may be a zombie)."""
        return self.process.returncode is None

    def waitable(self) -> list[Member]:
        """The child as a :class:`Member` to wait on, or nothing once it is reaped."""
        if not self.running():
            return []
        return [Member.of_child(self.pid, self.pidfd)]

    def signal(self, sig: int) -> bool:
        """Signal the child's group (or, failing that, the child); True if the group got it.

        Each process must get the stop signal once: many programs treat a second SIGTERM
        or SIGINT as "exit now, skip the clean shutdown".
        """
        if not self.running():
            return False
        grouped = self._signal_group(sig)
        if not grouped or _pgid(self.pid) != self.pid:
            send_signal(self.pidfd, self.pid, sig)
        return grouped

    def reached(self, grouped: bool) -> Callable[[int], bool]:
        """Whether a PID already got the signal that reached our group (if it did)."""
        if not grouped:
            return nobody
        return lambda pid: _pgid(pid) == self.pid

    def _signal_group(self, sig: int) -> bool:
        # A group ID is the PID of the process that created it; while that PID is ours and
        # unreaped, no stranger can own a group with that ID. Popen's own lock keeps a
        # concurrent poll() from reaping the child between our check and the signal.
        lock = getattr(self.process, "_waitpid_lock", None)
        if lock is None:
            return False
        # Ctrl-C between acquire() and the try would keep Popen's lock: poll() would hang.
        with interrupts.deferred():
            if not lock.acquire(timeout=0.1):
                return False
            try:
                if not self.running() or _reaped_behind_our_back(self.pidfd):
                    return False
                return tree.signal_group(self.pid, sig)
            finally:
                lock.release()

    def reap(self, timeout: float) -> int | None:
        """Collect the child's exit status, waiting at most ``timeout``; None if it lives."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def family(leader: Leader, *, walk: bool = True) -> list[Member]:
    """The leader's descendants and its cgroup's members, pinned (without the leader).

    With ``walk=False`` (a sealed cgroup: see :func:`contained`) only the cgroup's members.
    """
    return survey(leader, walk=walk, young=False)[0]


def survey(leader: Leader, *, walk: bool, young: bool) -> tuple[list[Member], set[int] | None]:
    """:func:`family`, and with ``young`` the other processes started since the leader.

    Those are the only ones that can carry the leader's marker (it is inherited), so the
    marker scan reads their environments only; None where that cannot be told.
    """
    found: list[Member] = []
    since: set[int] | None = None
    if walk and leader.running():
        pinned = identity.of(leader.process) if young else None
        started = pinned.started if pinned is not None else None
        with contextlib.suppress(Exception):
            found, since = tree.survey(leader.pid, started)
    family = found + cgroup_members(leader, {leader.pid, *(member.pid for member in found)})
    return family, since


def contained(leader: Leader) -> bool:
    """Whether the leader's cgroup holds its whole tree, so no ``/proc`` walk is needed.

    A move still pending gets :data:`MOVE_WAIT` to land.
    """
    pinned = identity.of(leader.process)
    group = pinned.group if pinned is not None else None
    return group is not None and leader.running() and group.settle(MOVE_WAIT) and group.sealed()


def settled(leader: Leader) -> None:
    """Let the cgroup thread finish this run's move (its descriptors) before stop() returns."""
    pinned = identity.of(leader.process)
    if pinned is not None and pinned.group is not None:
        pinned.group.settle(SETTLE_WAIT)


def cgroup_members(leader: Leader, known: set[int]) -> list[Member]:
    """Members of the leader's own cgroup not in ``known``, each pinned then re-checked."""
    pinned = identity.of(leader.process)
    group = pinned.group if pinned is not None else None
    if group is None:
        return []
    members = []
    for pid in group.pids() - known:
        member = Member.pinned(pid)
        if member is None:
            continue
        # Pinned first: if the PID was recycled in between, the new process is not a member.
        if group.holds(pid):
            members.append(member)
        else:
            member.close()
    return members


def nobody(pid: int) -> bool:
    return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def deliver(
    leader: Leader,
    family: list[Member],
    sig: int,
    signal_marked: SignalMarked | None,
    claim: Callable[[Iterable[int]], list[Member]],
    young: set[int] | None = None,
) -> tuple[int, list[Member]]:
    """Send ``sig`` once to each process of the tree; how many, and the marked escapees.

    ``signal_marked=None`` skips the marker walk (a sealed cgroup holds the whole tree);
    with ``young`` (see :func:`survey`) only those processes are checked for the marker.
    """
    alive = leader.running()
    reached = leader.reached(leader.signal(sig))
    loners = [member for member in family if not reached(member.pid)]
    count = int(alive) + len(family) - len(loners) + len(tree.signal_all(loners, sig))
    if signal_marked is None:
        return count, []
    known = {leader.pid, *(member.pid for member in family)}
    if young is not None:
        escapees = claim(young - known)
        tree.signal_all((member for member in escapees if not reached(member.pid)), sig)
        return count + len(escapees), escapees
    marked = signal_marked(sig, lambda pid: pid in known or reached(pid))
    escapees = claim(marked - known)
    return count + len(escapees), escapees


def _reaped_behind_our_back(pidfd: int | None) -> bool:
    """Whether someone else already reaped the child (then its PID may be recycled)."""
    waitid = getattr(os, "waitid", None)
    which = getattr(os, "P_PIDFD", None)
    if pidfd is None or waitid is None or which is None:
        return False
    try:
        waitid(which, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    except OSError:
        return False
    return False
