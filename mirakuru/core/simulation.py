"""A start on a virtual clock: the real wait, against a scripted process.

The third driver of the :class:`~mirakuru.core.engine.WaitEngine`, beside the blocking
and the async ones. It takes the :class:`~mirakuru.core.plan.StartPlan` an executor makes
for a real start (the budget, the schedule, what wakes the wait) and a :class:`Script`
(ready from some instant, exiting at another), and plays the start out: the engine decides
when to check and how long to wait, exactly as in a real start; the script answers the
checks, and its events (a line of output, a notification, a file appearing, the exit)
wake the wait as the reactor would. Nothing is spawned and nothing sleeps: time is a
number, and a quiet stretch of polling is skipped in one step (:meth:`WaitEngine.coast`).

What a real start's checks see is modelled this way:

- a polled probe (a TCP port, an HTTP status, a pid file, a unix socket) passes at any
  check from ``ready_after`` on;
- a banner or sd_notify passes once its event reached the waiter: at ``ready_after`` plus
  :data:`OUTPUT_WAKE` or :data:`NOTIFY_WAKE`; a banner is printed only if the process
  is still alive at ``ready_after``;
- an exit with a non-zero code fails the first check after it (``check_subprocess()``);
  an exit with code 0 ends the output, which fails a start waiting for a banner it never
  printed; for any other probe the start fails at that check too, since the scripted
  process is the whole service and leaves nothing running (a real launcher that
  daemonizes and leaves its service running is waited for, as in a real start);
- each check takes ``duration`` seconds and ``cost`` seconds of the waiting thread's CPU
  (the adaptive schedule spaces cheap checks more closely than dear ones); timed waits
  end exactly on time.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

from mirakuru.core.engine import CHECK, Decision, Finish, Wait, WaitEngine
from mirakuru.core.lifecycle import Lifecycle, State, StateChange, Trigger
from mirakuru.core.outcome import (
    Ready,
    exited_note,
    launcher_exit_note,
    left_nothing_note,
    output_ended_note,
    timed_out_note,
)
from mirakuru.core.plan import StartPlan
from mirakuru.core.probes import Banner, Leaf, SdNotify, hopeless, leaves, satisfied
from mirakuru.core.validate import check_duration

__all__ = [
    "EXIT_WAKE",
    "NOTIFY_WAKE",
    "OUTPUT_WAKE",
    "WATCH_WAKE",
    "NeverReturns",
    "Script",
    "SimulatedStart",
    "Wakes",
    "simulate",
]

# How long after an event the waiting thread runs, as measured on 2-vCPU Linux VMs with
# an idle CPU to wake (docs: "Facts for speed work"). Nominal values: a busy machine is
# slower, a spinning one faster; the simulation needs one number each.

#: A line on a captured pipe: the reactor reads it, then wakes the waiter (0.8-1.3 ms).
OUTPUT_WAKE = 0.001
#: A ``READY=1`` datagram on the notify socket: the same path as output.
NOTIFY_WAKE = 0.001
#: A pid file or unix socket appearing in a watched directory (inotify, about 0.9 ms).
WATCH_WAKE = 0.0009
#: An exit seen through a pidfd (0.3-0.4 ms).
EXIT_WAKE = 0.0004

Verdict = Literal["ready", "timed_out", "exited"]


@attrs.frozen(slots=True)
class Script:
    """A scripted process: ready from ``ready_after`` seconds after the start (``None``:
    never), exiting at ``exits_after`` (``None``: not during the start) with ``exit_code``;
    with ``leaves_running``, an exit with status 0 leaves the service running (a launcher
    that daemonized), else the process was the whole service."""

    ready_after: float | None
    exits_after: float | None = None
    exit_code: int = 0
    leaves_running: bool = False

    def __attrs_post_init__(self) -> None:
        check_duration("ready_after", self.ready_after, allow_none=True)
        check_duration("exits_after", self.exits_after, allow_none=True)
        code = self.exit_code
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"exit_code must be an int, got {code!r} ({type(code).__name__})")


@attrs.frozen(slots=True)
class Wakes:
    """Virtual seconds from each kind of event to the waiter waking on it.

    ``watch`` is None where no directory watch is made (the pid file or socket is only
    polled); ``exit`` is None where nothing wakes the waiter on an exit (the next check
    notices it).
    """

    output: float = OUTPUT_WAKE
    notify: float = NOTIFY_WAKE
    watch: float | None = WATCH_WAKE
    exit: float | None = EXIT_WAKE


@attrs.frozen(slots=True)
class SimulatedStart:
    """How a simulated ``start()`` ended.

    ``outcome``: ``"ready"`` (it returned), ``"timed_out"`` (it raised
    :class:`~mirakuru.exceptions.TimeoutExpired`) or ``"exited"`` (the process's exit
    failed it: :class:`~mirakuru.exceptions.ProcessExitedWithError`, or
    :class:`~mirakuru.exceptions.OutputEnded` for a banner never printed); ``returned_at``:
    virtual seconds after ``start()`` was called; ``checks``: readiness checks made;
    ``history``: the state changes the executor would have recorded, stamped with the
    virtual clock; ``exit_code``: the exit that failed the start, if one did.
    """

    outcome: Verdict
    returned_at: float
    checks: int
    history: tuple[StateChange, ...]
    exit_code: int | None = None


class NeverReturns(ValueError):
    """The simulated ``start()`` would wait forever: no timeout, and a script that never
    makes the process ready nor fails it."""


class _Scripted:
    """The scripted process as the checks and the waiter see it."""

    def __init__(self, plan: StartPlan, script: Script, wakes: Wakes) -> None:
        self.plan = plan
        self.script = script
        self.wakes = wakes
        ready, exits = script.ready_after, script.exits_after
        self.ready = math.inf if ready is None else ready
        self.exits = math.inf if exits is None else exits
        probe_leaves = leaves(plan.probe) if plan.probe is not None else ()
        self.leaves: tuple[Leaf, ...] = probe_leaves
        #: When each event-driven leaf has reached the waiter.
        self.heard: dict[Leaf, float] = {}
        events: list[tuple[float, bool]] = []
        for leaf in probe_leaves:
            if isinstance(leaf, Banner) and self.ready < self.exits:
                self.heard[leaf] = self.ready + wakes.output
            elif isinstance(leaf, SdNotify):
                self.heard[leaf] = self.ready + wakes.notify
        events.extend((at, False) for at in self.heard.values())
        if plan.watched and wakes.watch is not None:
            events.append((self.ready + wakes.watch, True))
        if wakes.exit is not None:
            events.append((self.exits + wakes.exit, False))
        #: (instant, hint) of each wake-up, soonest first; finite ones only.
        self.events = sorted(event for event in events if math.isfinite(event[0]))
        changes = {self.ready, self.exits, *self.heard.values()}
        #: Every instant at which a check's answer may change, or a wake-up comes.
        self.changes = sorted(
            t for t in changes | {at for at, _ in self.events} if math.isfinite(t)
        )

    def check(self, now: float) -> tuple[bool, int | None]:
        """(passed, the exit code that fails the start) for a check at ``now``."""
        exited = now >= self.exits
        code = self.script.exit_code
        if exited and code == 0 and self.script.leaves_running:
            exited = False  # the launcher is gone, the service it started lives on
        if exited and code != 0:
            return False, code  # check_subprocess() sees the exit first
        plan = self.plan
        if plan.probe is None or not plan.stock:
            passed = now >= self.ready
            return passed, (code if exited and not passed else None)
        state = {leaf: self._leaf_ready(leaf, now) for leaf in self.leaves}
        if satisfied(plan.probe, state):
            return True, None
        banners = {leaf for leaf in self.leaves if isinstance(leaf, Banner) and not state[leaf]}
        if exited and banners and hopeless(plan.probe, banners):
            return False, code  # the output ended without the banner
        if exited:
            return False, code  # exited 0, and nothing of the service is left
        return False, None

    def banner_hopeless(self, now: float) -> bool:
        """Whether the probe waits for a banner that can no longer come (output ended)."""
        plan = self.plan
        if plan.probe is None or not plan.stock:
            return False
        banners = {
            leaf
            for leaf in self.leaves
            if isinstance(leaf, Banner) and not self._leaf_ready(leaf, now)
        }
        return bool(banners) and hopeless(plan.probe, banners)

    def _leaf_ready(self, leaf: Leaf, now: float) -> bool:
        if isinstance(leaf, Banner | SdNotify):
            return now >= self.heard.get(leaf, math.inf)
        return now >= self.ready

    def wake(self, now: float, until: float) -> tuple[float, bool]:
        """When a wait from ``now`` until ``until`` ends, and whether a hint ended it;
        the events it consumes (any that came during the check too) are gone."""
        events = self.events
        if not events or events[0][0] > until:
            return until, False
        woke = max(now, events[0][0])
        hinted = False
        while events and events[0][0] <= woke:
            hinted = hinted or events.pop(0)[1]
        return woke, hinted

    def next_change(self, now: float) -> float:
        """The first instant after ``now`` at which anything happens (infinite: none)."""
        pending = self.events[0][0] if self.events else math.inf
        later = next((t for t in self.changes if t > now), math.inf)
        return min(pending, later)


def simulate(
    plan: StartPlan,
    script: Script,
    *,
    wakes: Wakes | None = None,
    cost: float = 0.0,
    duration: float = 0.0,
    waits: bool = True,
    start: float = 0.0,
    initial: State = State.IDLE,
) -> SimulatedStart:
    """Play out a start that follows ``plan`` against ``script``, each check taking
    ``duration`` seconds and ``cost`` CPU seconds.

    ``waits`` False is a start that returns once spawned (a ``SimpleExecutor``); ``start``
    is the virtual clock's reading when ``start()`` is called (the history's timestamps
    are on that clock), and ``initial`` the executor's state then.
    """
    check_duration("check_duration", duration, allow_none=False)
    check_duration("check_cpu", cost, allow_none=False)
    lifecycle = Lifecycle(initial)
    lifecycle.fire(Trigger.START, start)
    if not waits:
        lifecycle.fire(Trigger.READY, start)
        return SimulatedStart("ready", 0.0, 0, lifecycle.history)
    process = _Scripted(plan, script, wakes or Wakes())
    engine = WaitEngine(plan.budget(0.0), plan.schedule, adaptive=plan.adaptive)
    now = cpu = read = 0.0  # read: when the last check looked at the process
    daemonized = script.leaves_running and script.exit_code == 0
    decision: Decision = engine.begin()
    while not isinstance(decision, Finish):
        if decision is CHECK:
            read = now
            if daemonized and now >= process.exits:
                daemonized = False  # noted once, as a real start notes the leader's exit
                lifecycle.note(launcher_exit_note(None, left=True), start + now)
            passed, failed_by = process.check(now)
            now += duration
            cpu += cost
            if failed_by is not None:
                note = exited_note(failed_by) if failed_by else output_ended_note(failed_by)
                if failed_by == 0 and not process.banner_hopeless(now):
                    lifecycle.note(launcher_exit_note(None, left=False), start + now)
                    note = left_nothing_note()
                lifecycle.fire(Trigger.FAIL, start + now, note)
                return SimulatedStart(
                    "exited", now, engine.checks + 1, lifecycle.history, failed_by
                )
            decision = engine.checked(passed, now, cpu)
            continue
        assert isinstance(decision, Wait)
        # What changed while the last check ran is still to be seen by the next one.
        horizon = process.next_change(read)
        if engine.budget.deadline is None and math.isinf(horizon):
            raise NeverReturns(
                "start() would never return: the executor has no timeout, and the script "
                "neither makes the process ready nor fails it"
            )
        decision, skipped = engine.coast(decision, horizon, cost=cost, duration=duration)
        cpu += skipped * cost
        now, hinted = process.wake(now, decision.until)
        decision = engine.woke(now, hinted=hinted)
    if isinstance(decision.outcome, Ready):
        lifecycle.fire(Trigger.READY, start + now)
        return SimulatedStart("ready", now, engine.checks, lifecycle.history)
    lifecycle.fire(Trigger.FAIL, start + now, timed_out_note(plan.timeout))
    return SimulatedStart("timed_out", now, engine.checks, lifecycle.history)
