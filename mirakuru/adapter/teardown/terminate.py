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
any other task (:meth:`~mirakuru.adapter.spawn.cgroup.Cgroup.sealed`), everything it forks is
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
import subprocess
import threading
from collections.abc import Callable, Iterable
from typing import Any

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.teardown import signalling, tree
from mirakuru.adapter.teardown.signalling import (
    KILL_WAIT,
    STRAGGLER_GRACE,
    KillPolicy,
    Leader,
    SignalMarked,
)
from mirakuru.adapter.teardown.tree import Member
from mirakuru.core.report import StopReport

__all__ = ["StopReport", "kill_tree", "reap_later", "terminate"]


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
    contained = not marker_hook and signalling.contained(leader)
    # Our own marker scan may read only the young processes' environments; a user's
    # _kill_all_kids gets called as it always was.
    family, young = signalling.survey(leader, walk=not contained, young=not marker_hook)
    members = list(family)
    try:
        count, escapees = signalling.deliver(
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
        signalling.settled(leader)
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
    late += signalling.cgroup_members(leader, pinned)
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
        signal_marked(sig, signalling.nobody)


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
    family = signalling.family(leader)
    members = list(family)
    leftovers: list[Member] = []
    exit_code = None
    try:
        count, escapees = signalling.deliver(leader, family, sig, signal_marked, claim)
        members.extend(escapees)
        if wait is not None:
            leftovers = tree.wait_gone([*leader.waitable(), *members], wait, clock)
            exit_code = leader.reap(wait)
            signalling.settled(leader)
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
