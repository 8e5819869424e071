"""The wait engine: every decision of a readiness wait, fed the time and the events.

A driver (the blocking waiter, the async waiter, a simulation on a virtual clock) owns the
effects: it runs the check, blocks until an event or a time, and reads the clocks. The
engine owns the decisions: check now, wait until an instant, or finish with an outcome.
Nothing here reads a clock or touches the system, so one engine serves every driver and a
test can drive it with invented readings.

A driver's loop::

    decision = engine.begin()
    while not isinstance(decision, Finish):
        if isinstance(decision, Check):
            decision = engine.checked(check(), clock(), cpu_clock())
        else:  # Wait
            hinted = block_until_event_or(decision.delay)
            decision = engine.woke(clock(), hinted=hinted)
    return decision.outcome
"""

from __future__ import annotations

import math

import attrs

from mirakuru.core.budget import Budget
from mirakuru.core.outcome import Outcome, Ready, TimedOut
from mirakuru.core.schedule import PollSchedule, adaptive_cap, stretch_ends, stretched

__all__ = ["CHECK", "Check", "Decision", "Finish", "Wait", "WaitEngine", "overtime_budget"]


@attrs.frozen(slots=True)
class Check:
    """Run the readiness check now, then report it with :meth:`WaitEngine.checked`."""


@attrs.frozen(slots=True)
class Wait:
    """Block until ``until`` (``delay`` seconds after the reading the decision was made
    at) or an event, whichever is first, then report with :meth:`WaitEngine.woke`."""

    until: float
    delay: float


@attrs.frozen(slots=True)
class Finish:
    """The wait is over: ``outcome`` says how."""

    outcome: Outcome


Decision = Check | Wait | Finish

#: The one Check value: it carries nothing, so drivers can compare by identity.
CHECK = Check()


def overtime_budget(budget: Budget | None, now: float, step: float) -> Budget:
    """The budget to go on with after a timeout that the executor chose to ride out.

    A budget that is no longer expired (the timeout hook extended it) is kept; an expired
    one gives way to a single ``step``, so waiting past the deadline is never a spin.
    """
    if budget is None:
        return Budget.unbounded()
    return Budget.starting_at(now, step) if budget.expired(now) else budget


class WaitEngine:
    """The decisions of one readiness wait.

    The first check always runs, even with an expired budget; after that a check runs when
    an event or the schedule's next delay wakes the driver, unless the deadline has passed
    by then (readiness seen past the deadline is a timeout). A hint (an event saying
    readiness is probably moments away, say a file appearing in a watched directory)
    restarts the schedule at its first, shortest delay. With ``adaptive``, the schedule's
    cap follows the cheapest wake-up seen so far (the CPU between one check's end and the
    next's, less what serving events cost: see :func:`~mirakuru.core.schedule.adaptive_cap`),
    and the gap stretches with the time waited since the first check or the last hint
    (:func:`~mirakuru.core.schedule.stretched`).
    """

    __slots__ = (
        "_adaptive",
        "_began",
        "_budget",
        "_cap",
        "_cycle_began",
        "_deadline",
        "_first",
        "_floor",
        "_index",
        "_ramped",
        "_schedule",
        "_wake_cost",
        "checks",
    )

    def __init__(self, budget: Budget, schedule: PollSchedule, *, adaptive: bool = True) -> None:
        self._schedule = schedule
        self._adaptive = adaptive
        #: How many checks ran, over the whole wait (resumes included).
        self.checks = 0
        self._restart(budget)

    def _restart(self, budget: Budget) -> None:
        self._budget = budget
        # Read on every wake-up (hundreds a second while a port is polled): a plain number.
        self._deadline = math.inf if budget.deadline is None else budget.deadline
        self._floor = 0.0  # the least pause the last real check asked for
        self._index = 0  # position in the schedule; a hint moves it back to the start
        self._ramped = False  # the schedule's delays have grown past the cap: it is the gap
        self._wake_cost = math.inf  # CPU seconds of the cheapest wake-up so far
        self._cycle_began = 0.0
        self._cap = self._schedule.cap
        self._first = True  # no wake-up precedes a round's first check: no cost to measure
        self._began = math.nan  # when the first check ended (or the last hint fired)

    @property
    def adaptive(self) -> bool:
        """Whether the cap follows the checks' cost (the driver then reports CPU readings)."""
        return self._adaptive

    @property
    def budget(self) -> Budget:
        """The budget the current round of the wait runs under."""
        return self._budget

    @property
    def cap(self) -> float:
        """The longest delay between checks at this point (the adaptive cap, if adaptive)."""
        return self._cap

    def begin(self) -> Check:
        """The first decision of a round: always a check."""
        return CHECK

    def checked(
        self, passed: bool, now: float, cpu: float = 0.0, *, floor: float = 0.0
    ) -> Decision:
        """A check just ended at ``now`` (``passed`` or not); ``cpu`` is a reading of the
        waiter's CPU clock, for the adaptive cap (ignored unless adaptive). ``floor`` is the
        least pause before the next timed check (say, one ``sleep`` once an HTTP server
        answers at all), never past the deadline; events still end the wait at once."""
        if passed:
            self.checks += 1
            self._first = False
            return Finish(Ready(self.checks))
        self._floor = floor
        return self.refused(now, cpu)

    def refused(self, now: float, cpu: float = 0.0) -> Decision:
        """A timed wake-up ended at ``now`` with a sure "not ready yet" that the driver got
        without the check (no listener in the kernel's socket table, no banner seen): a
        failed check, under the floor the last real check asked for. ``cpu`` as for
        :meth:`checked`.

        The path of nearly every wake-up of a polled wait, so it stays short: what a
        wake-up costs is what waiting costs.
        """
        self.checks += 1
        if self._adaptive:
            if self._first:
                self._first = False
                self._began = now
            else:
                # The cheapest wake-up so far is what the check itself costs. Dearer ones
                # paid for one-time work (imports, name resolution), a cold CPU after a
                # long sleep or a busy machine; following them would only slow detection.
                cost = cpu - self._cycle_began
                if cost < self._wake_cost:
                    self._wake_cost = cost
                    self._cap = adaptive_cap(cost, self._schedule.cap)
            self._cycle_began = cpu
        else:
            self._first = False
        remaining = self._deadline - now
        if remaining <= 0.0:
            return Finish(TimedOut(self.checks))
        cap = self._cap
        if self._ramped:
            delay = cap if cap < remaining else remaining
        else:
            grown = self._schedule.delay(self._index)
            # The cap only ever shrinks (it follows the cheapest wake-up): once the ramp
            # reached it, every later gap is the cap (or what remains).
            self._ramped = grown >= cap
            delay = min(grown, cap, remaining)
            self._index += 1
        if self._adaptive:
            delay = min(stretched(delay, now - self._began, self._schedule.cap), remaining)
        if self._floor > delay:
            delay = min(self._floor, remaining)
        return Wait(now + delay, delay)

    def woke(self, now: float, *, hinted: bool = False, served: float = 0.0) -> Decision:
        """The wait ended at ``now``: by an event or its time. ``hinted``: a hint fired;
        ``served``: CPU seconds spent serving events during it (the child's cost, not
        the check's: kept out of the adaptive cap)."""
        if hinted:
            self._index = 0
            self._ramped = False
            self._began = now
        self._cycle_began += served
        if now >= self._deadline:
            return Finish(TimedOut(self.checks))
        return CHECK

    def coast(
        self, wait: Wait, horizon: float, *, cost: float = 0.0, duration: float = 0.0
    ) -> tuple[Wait, int]:
        """Skip the quiet turns before ``horizon``, for a driver that knows nothing will
        happen until then (a simulation): the same as ending each wait on its time and
        failing each check (taking ``duration`` seconds and ``cost`` CPU seconds), at once.

        ``wait`` is the engine's latest decision. Only turns that repeat exactly are
        skipped: once the schedule has reached the cap, a check at ``cost`` leaves the
        cap where it is, and a whole turn fits before the deadline. Returns the wait to
        go on from and how many checks were skipped (the driver's CPU clock moves by that
        many ``cost``); nothing is skipped while the turns still change.
        """
        delay = self._cap
        deadline = self._budget.deadline
        limit = horizon if deadline is None else min(horizon, deadline)
        if self._adaptive:
            # The gap is the stretched cap until the stretch next changes it: skip no turn
            # past that (its decisions would have been made with a longer gap).
            waited = wait.until - wait.delay - self._began
            delay = stretched(delay, waited, self._schedule.cap)
            limit = min(limit, self._began + stretch_ends(self._cap, waited, self._schedule.cap))
        settled = (
            wait.delay == delay > 0.0
            and self._schedule.delay(self._index) >= self._cap
            and (
                not self._adaptive
                or adaptive_cap(min(self._wake_cost, cost), self._schedule.cap) == self._cap
            )
        )
        if not settled or not math.isfinite(limit):
            return wait, 0
        turn = delay + duration
        # Whole turns ending a full turn short of the limit, so that rounding in the
        # product cannot carry a skipped check onto the deadline or past an event.
        skipped = math.floor((limit - wait.until) / turn) - 1
        if skipped <= 0:
            return wait, 0
        self.checks += skipped
        self._index += skipped
        self._wake_cost = min(self._wake_cost, cost)
        self._cycle_began += skipped * cost
        return Wait(wait.until + skipped * turn, delay), skipped

    def resume(self, budget: Budget) -> Check:
        """After a timeout the executor chose to ride out: a new round under ``budget``
        (see :func:`overtime_budget`), beginning with a check."""
        self._restart(budget)
        return CHECK
