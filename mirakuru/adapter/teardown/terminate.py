"""Tearing down an executor's process tree: stop signal, bounded grace, escalation, reaping.

The algorithm, for :func:`terminate`: pin a snapshot of the leader's descendants, send the
stop signal to the leader, its group (only while the leader is unreaped, so the group ID
cannot have been recycled), the snapshot, and every process carrying our exact marker
(daemons that left the group), and every member of the service's own cgroup where it has
one (daemons that also left the session and wiped their environment); wait for all of them
on their pidfds; when the grace period ends, send the kill signal to every survivor and to
the marked processes again, wait (bounded) and reap. :func:`kill_tree` is the same without
the grace period.

Stragglers: once the leader has exited, the processes it left behind get at most
:data:`STRAGGLER_GRACE` more seconds (never more than the grace period) before the kill
signal. A leader that ignores the stop signal still gets the full grace period.

Sealed cgroups: when the leader was moved into its own cgroup before the kernel created
any other task (:meth:`~mirakuru.adapter.cgroup.Cgroup.sealed`), everything it forks is
born a member, so ``cgroup.procs`` is the whole tree and the two ``/proc`` walks (the
descendant snapshot and the marker scan) are skipped on the stop signal. They still run
where there is no cgroup, where the move landed late or is still pending, where a user's
subclass overrides ``_kill_all_kids`` (it is always called), and on escalation. What a
sealed stop does not see: a privileged process that moved itself out of the cgroup gets
the stop signal only through the process group, and is not waited for. Where the walks
run, one pass over ``/proc/*/stat`` gives the descendants and the processes started since
the leader; only those can carry its (inherited) marker, so only their environments are
read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from mirakuru.adapter import identity, tree
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.process import send_signal
from mirakuru.adapter.tree import Member
from mirakuru.compat import SIGKILL
from mirakuru.core.report import StopReport

__all__ = [
    "KILL_WAIT",
    "MAX_GRACE",
    "STRAGGLER_GRACE",
    "KillPolicy",
    "Leader",
    "StopReport",
    "kill_tree",
    "reap_later",
    "signal_name",
    "terminate",
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
            return _nobody
        return lambda pid: _pgid(pid) == self.pid

    def _signal_group(self, sig: int) -> bool:
        # A group ID is the PID of the process that created it; while that PID is ours and
        # unreaped, no stranger can own a group with that ID. Popen's own lock keeps a
        # concurrent poll() from reaping the child between our check and the signal.
        lock = getattr(self.process, "_waitpid_lock", None)
        if lock is None or not lock.acquire(timeout=0.1):
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


def _family(leader: Leader, *, walk: bool = True) -> list[Member]:
    """The leader's descendants and its cgroup's members, pinned (without the leader).

    With ``walk=False`` (a sealed cgroup: see :func:`_contained`) only the cgroup's members.
    """
    return _survey(leader, walk=walk, young=False)[0]


def _survey(leader: Leader, *, walk: bool, young: bool) -> tuple[list[Member], set[int] | None]:
    """:func:`_family`, and with ``young`` the other processes started since the leader.

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
    family = found + _cgroup_members(leader, {leader.pid, *(member.pid for member in found)})
    return family, since


def _contained(leader: Leader) -> bool:
    """Whether the leader's cgroup holds its whole tree, so no ``/proc`` walk is needed.

    A move still pending gets :data:`MOVE_WAIT` to land.
    """
    pinned = identity.of(leader.process)
    group = pinned.group if pinned is not None else None
    return group is not None and leader.running() and group.settle(MOVE_WAIT) and group.sealed()


def _settled(leader: Leader) -> None:
    """Let the cgroup thread finish this run's move (its descriptors) before stop() returns."""
    pinned = identity.of(leader.process)
    if pinned is not None and pinned.group is not None:
        pinned.group.settle(SETTLE_WAIT)


def _cgroup_members(leader: Leader, known: set[int]) -> list[Member]:
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


def _nobody(pid: int) -> bool:
    return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _deliver(
    leader: Leader,
    family: list[Member],
    sig: int,
    signal_marked: SignalMarked | None,
    claim: Callable[[Iterable[int]], list[Member]],
    young: set[int] | None = None,
) -> tuple[int, list[Member]]:
    """Send ``sig`` once to each process of the tree; how many, and the marked escapees.

    ``signal_marked=None`` skips the marker walk (a sealed cgroup holds the whole tree);
    with ``young`` (see :func:`_survey`) only those processes are checked for the marker.
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


def terminate(
    leader: Leader,
    policy: KillPolicy,
    signal_marked: SignalMarked,
    claim: Callable[[Iterable[int]], list[Member]],
    clock: Callable[[], float] = monotonic,
    *,
    marker_hook: bool = True,
) -> StopReport:
    """Stop the tree politely, escalate after the grace period, reap; never unbounded.

    ``signal_marked`` signals the processes carrying our marker and returns their PIDs;
    ``claim`` pins PIDs that carry the marker. If anything interrupts the wait (Ctrl-C),
    the whole tree gets the kill signal before the interruption propagates.
    ``marker_hook=False`` says ``signal_marked`` is our own marker walk, not a user's
    override, so a sealed cgroup may stand in for it (see the module docstring).
    """
    began = clock()
    sig = policy.stop_signal
    contained = not marker_hook and _contained(leader)
    # Our own marker scan may read only the young processes' environments; a user's
    # _kill_all_kids gets called as it always was.
    family, young = _survey(leader, walk=not contained, young=not marker_hook)
    members = list(family)
    try:
        count, escapees = _deliver(
            leader, family, sig, None if contained else signal_marked, claim, young
        )
        members.extend(escapees)
        survivors = _wait_with_stragglers(leader, members, policy.grace_seconds, clock)
        leftovers: list[Member] = []
        if survivors:
            leftovers = _escalate(
                leader, survivors, policy, signal_marked, claim, clock, walk=contained
            )
        exit_code = leader.reap(policy.kill_wait)
        _settled(leader)
    except BaseException:
        _kill_now(leader, members, policy.kill_signal, signal_marked)
        raise
    finally:
        for member in members:
            member.close()
    return StopReport(
        signal=sig,
        signalled=count,
        escalated=bool(survivors),
        ignored=tuple(sorted(member.pid for member in survivors)),
        leftovers=tuple(sorted(member.pid for member in leftovers)),
        exit_code=exit_code,
        duration=clock() - began,
        grace=policy.grace,
        kill_signal=policy.kill_signal,
    )


def _wait_with_stragglers(
    leader: Leader, members: list[Member], grace: float, clock: Callable[[], float]
) -> list[Member]:
    """Wait up to ``grace`` for the tree, but only :data:`STRAGGLER_GRACE` after the leader."""
    deadline = clock() + grace
    own = leader.waitable()
    if own and members:
        if tree.wait_gone(own, grace, clock):
            return [*own, *tree.wait_gone(members, 0.0, clock)]
        own = []
    remaining = max(0.0, deadline - clock())
    if not own:
        remaining = min(remaining, STRAGGLER_GRACE)
    return tree.wait_gone([*own, *members], remaining, clock)


def _escalate(
    leader: Leader,
    survivors: list[Member],
    policy: KillPolicy,
    signal_marked: SignalMarked,
    claim: Callable[[Iterable[int]], list[Member]],
    clock: Callable[[], float],
    *,
    walk: bool = False,
) -> list[Member]:
    """The kill signal for every survivor and every marked process; who still lives.

    ``walk``: the stop signal skipped the descendant walk (sealed cgroup); do it now.
    """
    sig = policy.kill_signal
    pinned = {leader.pid, *(member.pid for member in survivors)}
    # Before the leader dies and its children are re-parented out of reach.
    late = _late_descendants(leader, pinned) if walk else []
    leader.signal(sig)
    tree.signal_all(survivors, sig)
    # Processes forked during the grace period are found in the cgroup and by the marker.
    pinned.update(member.pid for member in late)
    late += _cgroup_members(leader, pinned)
    tree.signal_all(late, sig)
    pinned.update(member.pid for member in late)
    late += claim(signal_marked(sig, pinned.__contains__) - pinned)
    try:
        return tree.wait_gone([*leader.waitable(), *survivors, *late], policy.kill_wait, clock)
    finally:
        for member in late:
            member.close()


def _late_descendants(leader: Leader, known: set[int]) -> list[Member]:
    """The leader's descendants not in ``known``, pinned (none once it is reaped)."""
    found: list[Member] = []
    if leader.running():
        with contextlib.suppress(Exception):
            found = tree.snapshot(leader.pid)
    late = []
    for member in found:
        if member.pid in known:
            member.close()
        else:
            late.append(member)
    return late


def _kill_now(leader: Leader, members: list[Member], sig: int, signal_marked: SignalMarked) -> None:
    """Last resort when a teardown is interrupted: everyone we know of gets ``sig``."""
    with contextlib.suppress(Exception):
        leader.signal(sig)
    with contextlib.suppress(Exception):
        tree.signal_all(members, sig)
    with contextlib.suppress(Exception):
        signal_marked(sig, _nobody)


def kill_tree(
    leader: Leader,
    sig: int,
    signal_marked: SignalMarked,
    claim: Callable[[Iterable[int]], list[Member]],
    wait: float | None,
    clock: Callable[[], float] = monotonic,
) -> StopReport:
    """Send ``sig`` to the whole tree; with ``wait`` seconds, wait for it and reap.

    With ``wait=None`` nothing waits: the caller hands the child to :func:`reap_later`.
    """
    began = clock()
    family = _family(leader)
    members = list(family)
    leftovers: list[Member] = []
    exit_code = None
    try:
        count, escapees = _deliver(leader, family, sig, signal_marked, claim)
        members.extend(escapees)
        if wait is not None:
            leftovers = tree.wait_gone([*leader.waitable(), *members], wait, clock)
            exit_code = leader.reap(wait)
            _settled(leader)
    finally:
        for member in members:
            member.close()
    return StopReport(
        signal=sig,
        signalled=count,
        leftovers=tuple(sorted(member.pid for member in leftovers)),
        exit_code=exit_code,
        duration=clock() - began,
    )


def reap_later(process: subprocess.Popen[Any], timeout: float = KILL_WAIT) -> None:
    """Reap a killed child in the background so it does not linger as a zombie.

    Best effort: at interpreter shutdown no thread can be started, and the child is left
    to :mod:`subprocess`'s own deferred reaping.
    """
    if process.returncode is not None:
        return
    try:
        threading.Thread(
            target=_reap_quietly, args=(process, timeout), name="mirakuru-reaper", daemon=True
        ).start()
    except RuntimeError:
        return


def _reap_quietly(process: subprocess.Popen[Any], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        process.wait(timeout)
