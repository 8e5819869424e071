"""Property tests of the wait engine, driven on a fake clock with scripted events.

The driver here is the smallest one possible: a check that passes from a chosen instant
on, events at chosen instants, and time that moves only when the engine says to wait.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirakuru.core.budget import Budget
from mirakuru.core.engine import (
    Check,
    Decision,
    Finish,
    Wait,
    WaitEngine,
    overtime_budget,
)
from mirakuru.core.outcome import Outcome, Ready, TimedOut
from mirakuru.core.schedule import (
    FIRST_DELAY,
    MIN_AUTO_CAP,
    PollSchedule,
    adaptive_cap,
    event_schedule,
    stretched,
)
from tests.core.strategies import FakeClock, instants

# Bounded so that a wait takes at most a few hundred turns of the loop.
timeouts = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
caps = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)
costs = st.floats(min_value=0.0, max_value=0.05, allow_nan=False)
moments = st.floats(min_value=0.0, max_value=6.0, allow_nan=False)
schedules = st.builds(
    PollSchedule,
    cap=caps,
    first=st.floats(min_value=0.001, max_value=0.1),
    growth=st.floats(min_value=1.0, max_value=3.0),
)


@attrs.frozen
class Trace:
    """What a simulated wait did: the outcome, when each check began, each wait's delay."""

    outcome: Outcome
    checks: tuple[float, ...]
    delays: tuple[float, ...]
    ended: float


def drive(
    engine: WaitEngine,
    clock: FakeClock,
    *,
    ready_at: float = math.inf,
    events: Sequence[float] = (),
    hints: Sequence[float] = (),
    cost: float = 0.0,
) -> Trace:
    """Run ``engine`` to its end on ``clock``; each check costs ``cost`` fake seconds of
    both time and CPU. An event (or a hint) at instant t ends a wait that spans t."""
    pending = sorted(t for t in {*events, *hints} if t > clock())
    hinted_at = set(hints)
    cpu = 0.0
    checks: list[float] = []
    delays: list[float] = []
    decision: Decision = engine.begin()
    while not isinstance(decision, Finish):
        assert len(checks) < 100_000, "the engine never finishes"
        if isinstance(decision, Check):
            began = clock()
            checks.append(began)
            clock.advance(cost)
            cpu += cost
            decision = engine.checked(began >= ready_at, clock(), cpu)
            continue
        assert decision.delay >= 0.0
        assert decision.until == pytest.approx(clock() + decision.delay)
        delays.append(decision.delay)
        due = [t for t in pending if t <= decision.until]
        if due and due[0] > clock():
            clock.now = due[0]
        else:
            clock.now = max(clock.now, decision.until)
        fired = [t for t in pending if t <= clock()]
        pending = [t for t in pending if t > clock()]
        decision = engine.woke(clock(), hinted=any(t in hinted_at for t in fired))
    return Trace(decision.outcome, tuple(checks), tuple(delays), clock())


class TestBeginning:
    """A wait always begins with a check."""

    @given(start=instants, overdue=st.floats(min_value=0.0, max_value=100.0))
    def test_expired_budget_checks_exactly_once(self, start: float, overdue: float) -> None:
        """With the budget already gone, the check still runs once, and only once."""
        clock = FakeClock(start + overdue)
        trace = drive(WaitEngine(Budget(start), PollSchedule()), clock)
        assert trace.outcome == TimedOut(1)
        assert len(trace.checks) == 1

    def test_begin_is_a_check(self) -> None:
        """The first decision is to check, whatever the budget."""
        assert isinstance(WaitEngine(Budget(0.0), PollSchedule()).begin(), Check)


class TestDeadline:
    """Never a check after the deadline, except the first; a timeout ends at the deadline."""

    @given(timeout=timeouts, schedule=schedules, cost=costs, adaptive=st.booleans())
    def test_never_checks_after_the_deadline(
        self, timeout: float, schedule: PollSchedule, cost: float, adaptive: bool
    ) -> None:
        """Only the first check may begin at or after the deadline; then it gives up."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, timeout), schedule, adaptive=adaptive)
        trace = drive(engine, clock, cost=cost)
        assert trace.outcome == TimedOut(len(trace.checks))
        assert all(at < timeout for at in trace.checks[1:])
        assert trace.ended >= timeout

    @given(timeout=timeouts, schedule=schedules)
    def test_gives_up_at_the_deadline(self, timeout: float, schedule: PollSchedule) -> None:
        """With free checks, a wait that never succeeds ends exactly at the deadline."""
        clock = FakeClock()
        trace = drive(WaitEngine(Budget.starting_at(0.0, timeout), schedule), clock)
        assert trace.ended == pytest.approx(timeout)

    @given(timeout=timeouts, schedule=schedules, adaptive=st.booleans())
    def test_waits_never_pass_the_deadline_or_the_cap(
        self, timeout: float, schedule: PollSchedule, adaptive: bool
    ) -> None:
        """No wait is longer than the schedule's cap, nor than what remains."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, timeout), schedule, adaptive=adaptive)
        trace = drive(engine, clock, cost=0.0005)
        assert all(delay <= schedule.cap + 1e-12 for delay in trace.delays)
        assert trace.ended <= timeout + 0.0005 + 1e-9


class TestReady:
    """Readiness ends the wait at once and counts the checks."""

    @given(timeout=timeouts, cost=costs, ready_at=moments, schedule=schedules)
    def test_ready_counts_checks(
        self, timeout: float, cost: float, ready_at: float, schedule: PollSchedule
    ) -> None:
        """A wait that ends Ready(k) made exactly k checks, the last one at or after the
        readiness and before the deadline (unless it was the first)."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, timeout), schedule)
        trace = drive(engine, clock, ready_at=ready_at, cost=cost)
        if isinstance(trace.outcome, Ready):
            assert trace.outcome == Ready(len(trace.checks))
            assert trace.checks[-1] >= ready_at
            assert len(trace.checks) == 1 or trace.checks[-1] < timeout
            assert all(at < ready_at for at in trace.checks[:-1])
        assert engine.checks == len(trace.checks)

    @settings(deadline=None)
    @given(ready_at=st.floats(min_value=0.0, max_value=2.0), cap=caps)
    def test_seen_within_one_cap(self, ready_at: float, cap: float) -> None:
        """Polled readiness before the deadline is seen within one cap of it."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 10.0), PollSchedule(cap=cap), adaptive=False)
        trace = drive(engine, clock, ready_at=ready_at)
        assert isinstance(trace.outcome, Ready)
        assert trace.ended - ready_at <= cap + 1e-9

    @given(ready_at=st.floats(min_value=0.0, max_value=3.0))
    def test_event_driven_readiness_seen_at_its_event(self, ready_at: float) -> None:
        """With the event schedule, readiness announced by an event is seen at that event."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 5.0), event_schedule(), adaptive=False)
        trace = drive(engine, clock, ready_at=ready_at, events=[ready_at])
        assert trace.outcome == Ready(len(trace.checks))
        assert trace.ended == ready_at


class TestEvents:
    """Events wake the wait early; hints also restart the schedule."""

    @given(hint_at=st.floats(min_value=0.01, max_value=1.0))
    def test_a_hint_restarts_the_schedule(self, hint_at: float) -> None:
        """The wait after a hint is the schedule's first, shortest delay."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 2.0), PollSchedule(), adaptive=False)
        decision: Decision = engine.begin()
        while clock() < hint_at:
            decision = engine.checked(False, clock())
            assert isinstance(decision, Wait)
            clock.now = min(decision.until, hint_at)
            decision = engine.woke(clock(), hinted=clock() == hint_at)
        assert isinstance(decision, Check)
        after = engine.checked(False, clock())
        assert isinstance(after, Wait)
        assert after.delay == FIRST_DELAY

    @given(events=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=20))
    def test_an_event_is_followed_by_a_check(self, events: list[float]) -> None:
        """Each event before the deadline causes a check at its instant."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 1.5), event_schedule(), adaptive=False)
        trace = drive(engine, clock, events=events)
        assert {t for t in events if t > 0} <= set(trace.checks)


class TestAdaptiveCap:
    """The cap follows the cheapest wake-up, never above the schedule's own cap."""

    @given(cost=costs, sleep=caps)
    def test_cap_follows_the_cheapest_wakeup(self, cost: float, sleep: float) -> None:
        """After two checks of equal cost, the cap is adaptive_cap of that cost."""
        clock = FakeClock()
        engine = WaitEngine(Budget.unbounded(), PollSchedule(cap=sleep))
        engine.checked(False, clock(), 0.0)
        engine.woke(clock())
        engine.checked(False, clock(), cost)
        assert engine.cap == adaptive_cap(cost, sleep)

    @given(cost=costs, served=costs)
    def test_served_events_are_not_the_checks_cost(self, cost: float, served: float) -> None:
        """CPU spent serving events during a wait is left out of the wake-up's cost."""
        clock = FakeClock()
        engine = WaitEngine(Budget.unbounded(), PollSchedule())
        engine.checked(False, clock(), 0.0)
        engine.woke(clock(), served=served)
        engine.checked(False, clock(), served + cost)
        assert engine.cap == pytest.approx(adaptive_cap(cost))

    def test_not_adaptive_keeps_the_cap(self) -> None:
        """Without adaptation, an expensive check does not change the cap."""
        engine = WaitEngine(Budget.unbounded(), PollSchedule(cap=0.5), adaptive=False)
        engine.checked(False, 0.0, 0.0)
        engine.woke(0.0)
        engine.checked(False, 0.0, 10.0)
        assert engine.cap == 0.5


class TestStretch:
    """An adaptive wait's gap grows with the time waited since its first check."""

    @settings(max_examples=10, deadline=None)  # 22 s of 4 ms turns each
    @given(cost=st.floats(min_value=0.0, max_value=1e-4), sleep=caps)
    def test_gaps_follow_the_stretch(self, cost: float, sleep: float) -> None:
        """Every gap of a cheap check is the ramp or the cost-based cap, stretched by the
        time waited: never more than sleep, never a flat 4 ms for a long wait."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 22.0), PollSchedule(cap=sleep))
        trace = drive(engine, clock, cost=cost)
        began = trace.checks[0] + cost
        cheap = min(sleep, MIN_AUTO_CAP)  # what adaptive_cap gives a check this cheap
        for check, delay in list(zip(trace.checks, trace.delays, strict=False))[:-1]:
            waited = check + cost - began
            assert delay <= stretched(cheap, waited, sleep) + 1e-9
            assert delay <= sleep
            if waited >= 1.0:  # past the ramp
                assert delay >= stretched(engine.cap, waited, sleep) - 1e-9

    def test_prompt_for_seconds_then_cheaper(self) -> None:
        """A cheap check keeps its 4 ms gap through the first 10 s (the detection lag stays
        a tenth of published's); a minute's wait makes under 40% of a flat 4 ms gap's
        checks."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 60.0), PollSchedule())
        trace = drive(engine, clock, cost=2e-5)
        gaps = list(zip(trace.checks, trace.delays, strict=False))[:-1]
        assert max(gap for at, gap in gaps if 0.1 < at <= 9.9) <= MIN_AUTO_CAP
        assert max(gap for at, gap in gaps) == pytest.approx(0.032)
        assert len(trace.checks) < 0.4 * 60.0 / MIN_AUTO_CAP

    def test_a_hint_restarts_the_stretch(self) -> None:
        """A hint (readiness is probably moments away) brings back the shortest gaps."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 14.0), PollSchedule())
        trace = drive(engine, clock, hints=[13.0], cost=2e-5)
        after = [d for at, d in zip(trace.checks[1:], trace.delays, strict=False) if at > 13.0]
        assert after[0] == PollSchedule().first

    def test_not_adaptive_does_not_stretch(self) -> None:
        """A fixed schedule (event-driven safety net, a user's own) keeps its gaps."""
        clock = FakeClock()
        fixed = PollSchedule(cap=0.01, first=0.01)
        engine = WaitEngine(Budget.starting_at(0.0, 5.0), fixed, adaptive=False)
        trace = drive(engine, clock)
        assert set(trace.delays[:-1]) == {0.01}


class TestOvertime:
    """Riding out a timeout: one step at a time, or the extended budget."""

    @given(now=instants, step=caps, overdue=st.floats(min_value=0.0, max_value=10.0))
    def test_expired_budget_gives_one_step(self, now: float, step: float, overdue: float) -> None:
        """An expired budget gives way to one ``step`` from now."""
        assert overtime_budget(Budget(now - overdue), now, step) == Budget(now + step)

    @given(now=instants, left=st.floats(min_value=0.001, max_value=10.0))
    def test_extended_budget_is_kept(self, now: float, left: float) -> None:
        """A budget the timeout hook extended is kept as it is."""
        budget = Budget(now + left)
        assert overtime_budget(budget, now, 0.1) is budget

    def test_no_budget_is_unbounded(self) -> None:
        """No budget at all (the process is gone) waits without a deadline."""
        assert overtime_budget(None, 5.0, 0.1) == Budget.unbounded()

    @given(step=caps)
    def test_resume_checks_at_once_and_keeps_counting(self, step: float) -> None:
        """A resumed wait checks at once, and its checks add to the count."""
        clock = FakeClock()
        engine = WaitEngine(Budget.starting_at(0.0, 0.05), PollSchedule())
        first = drive(engine, clock)
        assert isinstance(first.outcome, TimedOut)
        assert isinstance(engine.resume(overtime_budget(engine.budget, clock(), step)), Check)
        second = drive(engine, clock, ready_at=clock())
        assert second.outcome == Ready(len(first.checks) + 1)


class TestFloor:
    """A floor spaces timed checks out (HTTP once a server answers), never past the deadline."""

    @given(
        timeout=timeouts,
        schedule=schedules,
        floor=st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
        start=instants,
    )
    def test_no_timed_check_comes_sooner_than_the_floor(
        self, timeout: float, schedule: PollSchedule, floor: float, start: float
    ) -> None:
        """Every wait lasts at least the floor, or until the deadline if that is sooner."""
        clock = FakeClock(start)
        budget = Budget.starting_at(start, timeout)
        engine = WaitEngine(budget, schedule, adaptive=False)
        decision: Decision = engine.begin()
        turns = 0
        while not isinstance(decision, Finish):
            turns += 1
            assert turns < 10_000
            if isinstance(decision, Check):
                decision = engine.checked(False, clock(), floor=floor)
                continue
            remaining = budget.remaining(clock())
            assert decision.delay >= min(floor, remaining) - 1e-12
            assert decision.delay <= remaining + 1e-12
            clock.now = decision.until
            decision = engine.woke(clock())
        assert isinstance(decision.outcome, TimedOut)


def coast_through(
    engine: WaitEngine, horizon: float, cost: float, *, coast: bool
) -> tuple[Outcome, int, float]:
    """Drive ``engine`` with failing checks of ``cost`` and no events until it finishes or
    a wait would reach ``horizon``; with ``coast``, skipping what it lets us skip.
    Returns (outcome or a stand-in, checks, the time reached)."""
    now = cpu = 0.0
    decision: Decision = engine.begin()
    while True:
        if isinstance(decision, Finish):
            return decision.outcome, engine.checks, now
        if isinstance(decision, Check):
            now += cost
            cpu += cost
            decision = engine.checked(False, now, cpu)
            continue
        if coast:
            decision, skipped = engine.coast(decision, horizon, cost=cost, duration=cost)
            cpu += skipped * cost
        if decision.until >= horizon:
            return Ready(-1), engine.checks, now
        now = decision.until
        decision = engine.woke(now)


class TestCoast:
    """Coasting skips quiet turns exactly as driving through them would."""

    @settings(deadline=None)
    @given(
        timeout=st.floats(min_value=0.0, max_value=20.0),
        schedule=schedules,
        cost=st.sampled_from([0.0, 1e-4, 3e-3]),
        adaptive=st.booleans(),
        horizon=st.floats(min_value=0.0, max_value=30.0),
    )
    def test_same_as_driving(
        self, timeout: float, schedule: PollSchedule, cost: float, adaptive: bool, horizon: float
    ) -> None:
        """Same ending, the same number of checks (give or take one, from rounding in
        sums of many pauses), at the same time."""
        budget = Budget.starting_at(0.0, timeout)
        driven = coast_through(
            WaitEngine(budget, schedule, adaptive=adaptive), horizon, cost, coast=False
        )
        coasted = coast_through(
            WaitEngine(budget, schedule, adaptive=adaptive), horizon, cost, coast=True
        )
        assert type(coasted[0]) is type(driven[0])
        assert abs(coasted[1] - driven[1]) <= 1
        assert coasted[2] == pytest.approx(driven[2], abs=schedule.cap + cost)

    @pytest.mark.parametrize("cost", [2e-5, 1e-4])
    def test_same_as_driving_through_the_stretch(self, cost: float) -> None:
        """Across every step of a long wait's stretch (10, 20, 40 and 80 s), coasting ends
        where driving does, with the same checks."""
        budget = Budget.starting_at(0.0, 100.0)
        driven = coast_through(WaitEngine(budget, PollSchedule()), 120.0, cost, coast=False)
        coasted = coast_through(WaitEngine(budget, PollSchedule()), 120.0, cost, coast=True)
        assert type(coasted[0]) is type(driven[0]) is TimedOut
        assert abs(coasted[1] - driven[1]) <= 1
        assert coasted[2] == pytest.approx(driven[2], abs=0.04 + cost)

    def test_skips_once_settled(self) -> None:
        """At the cap, a long quiet stretch is skipped in one step, a turn short of the
        limit; before the cap nothing is skipped."""
        engine = WaitEngine(Budget.starting_at(0.0, 100.0), PollSchedule(cap=0.5), adaptive=False)
        decision = engine.checked(False, 0.0)
        assert isinstance(decision, Wait)
        assert engine.coast(decision, 50.0) == (decision, 0)  # still ramping up
        while decision.delay < 0.5:
            assert isinstance(engine.woke(decision.until), Check)
            decision = engine.checked(False, decision.until)
            assert isinstance(decision, Wait)
        checks = engine.checks
        coasted, skipped = engine.coast(decision, 50.0)
        assert skipped > 90
        assert engine.checks == checks + skipped
        assert coasted.until <= 50.0 - 0.5
        assert coasted.delay == 0.5

    def test_no_limit_no_skip(self) -> None:
        """Without a deadline or a horizon there is no end to skip to."""
        engine = WaitEngine(Budget.unbounded(), PollSchedule(cap=0.01, first=0.01), adaptive=False)
        decision = engine.checked(False, 0.0)
        assert isinstance(decision, Wait)
        assert engine.coast(decision, math.inf) == (decision, 0)


class TestRefused:
    """A sure "not yet" the driver got without the check decides as that failed check would."""

    @given(
        timeout=timeouts,
        schedule=schedules,
        floors=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=20),
        cost=costs,
        gated=st.lists(st.booleans(), min_size=1, max_size=60),
        adaptive=st.booleans(),
    )
    @settings(max_examples=50)
    def test_same_decisions_as_the_failed_check(
        self,
        timeout: float,
        schedule: PollSchedule,
        floors: list[float],
        cost: float,
        gated: list[bool],
        adaptive: bool,
    ) -> None:
        """Whichever rounds are answered by refused(), every decision matches a wait whose
        checks all ran and failed, under the floor the last real check asked for."""
        budget = Budget.starting_at(0.0, timeout)
        plain = WaitEngine(budget, schedule, adaptive=adaptive)
        cheap = WaitEngine(budget, schedule, adaptive=adaptive)
        now, cpu = 0.0, 0.0
        one: Decision = plain.begin()
        other: Decision = cheap.begin()
        floor = 0.0
        for turn in range(500):
            assert one == other
            if isinstance(one, Finish):
                break
            if isinstance(one, Check):
                now += cost
                cpu += cost
                stand_in = turn > 0 and gated[turn % len(gated)]
                if stand_in:
                    other = cheap.refused(now, cpu)
                else:
                    floor = floors[turn % len(floors)]
                    other = cheap.checked(False, now, cpu, floor=floor)
                one = plain.checked(False, now, cpu, floor=floor)
            else:
                now = one.until
                one, other = plain.woke(now), cheap.woke(now)
        assert plain.checks == cheap.checks

    def test_refused_is_a_check(self) -> None:
        """It counts as a check, and a timed-out wait reports it."""
        engine = WaitEngine(Budget.starting_at(0.0, 0.01), PollSchedule(), adaptive=False)
        engine.begin()
        assert isinstance(engine.checked(False, 0.0), Wait)
        assert engine.refused(0.02) == Finish(TimedOut(2))
