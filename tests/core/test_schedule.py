"""Property tests of the polling schedule and the adaptive cap, driven by a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirakuru.core.budget import Budget
from mirakuru.core.schedule import (
    COST_RATIO,
    EVENT_SAFETY_NET,
    FIRST_DELAY,
    MAX_AUTO_CAP,
    MIN_AUTO_CAP,
    PROMPT_FOR,
    SHORT_SLEEP_SPEEDUP,
    STRETCH_LIMIT,
    PollSchedule,
    adaptive_cap,
    event_schedule,
    stretch_ends,
    stretch_limit,
    stretched,
)
from tests.core.strategies import FakeClock, durations, instants

caps = st.floats(min_value=1e-4, max_value=60.0, allow_nan=False)
attempts = st.integers(min_value=0, max_value=10_000)
costs = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


class TestDelays:
    """The delays between attempts, ignoring any deadline."""

    def test_first_delay_is_about_a_millisecond(self) -> None:
        """The first wait is about a millisecond, so quick readiness is seen quickly."""
        assert PollSchedule().delay(0) == FIRST_DELAY == 0.001

    @given(cap=caps, attempt=attempts)
    def test_never_exceed_the_cap(self, cap: float, attempt: int) -> None:
        """No delay is longer than the cap, an explicit ``sleep`` included."""
        assert PollSchedule(cap=cap).delay(attempt) <= cap

    @given(cap=caps, attempt=attempts)
    def test_never_shrink(self, cap: float, attempt: int) -> None:
        """Each delay is at least as long as the one before."""
        schedule = PollSchedule(cap=cap)
        assert schedule.delay(attempt + 1) >= schedule.delay(attempt)

    @given(cap=caps)
    def test_reach_the_cap(self, cap: float) -> None:
        """Backing off ends at the cap itself."""
        schedule = PollSchedule(cap=cap)
        reached = next(i for i, delay in enumerate(schedule.delays()) if delay == cap)
        assert reached < 100
        assert schedule.delay(reached + 1) == cap

    @given(cap=caps)
    def test_start_at_first_unless_capped(self, cap: float) -> None:
        """The first delay is the first step, or the cap when that is shorter."""
        assert PollSchedule(cap=cap).delay(0) == min(FIRST_DELAY, cap)

    def test_huge_attempt_numbers_are_cheap(self) -> None:
        """A very late attempt still gets the cap, without overflow."""
        assert PollSchedule(cap=0.2).delay(10**9) == 0.2

    @given(cap=caps, attempt=st.integers(min_value=0, max_value=200))
    def test_same_as_growing_step_by_step(self, cap: float, attempt: int) -> None:
        """The delay is the first one grown ``attempt`` times, up to the cap."""
        schedule = PollSchedule(cap=cap)
        stepped = schedule.first
        for _ in range(attempt):
            stepped = min(stepped * schedule.growth, cap)
        assert schedule.delay(attempt) == pytest.approx(min(stepped, cap), rel=1e-9)

    def test_enormous_growth_is_capped(self) -> None:
        """A growth whose power overflows a float just means the cap."""
        assert PollSchedule(cap=0.5, growth=1e300).delay(3) == 0.5

    def test_negative_attempt_is_refused(self) -> None:
        """Attempts are counted from zero."""
        with pytest.raises(ValueError, match="attempt"):
            PollSchedule().delay(-1)


class TestDeadline:
    """The schedule never sleeps past the deadline."""

    @given(cap=caps, attempt=attempts, remaining=durations)
    def test_wait_within_remaining(self, cap: float, attempt: int, remaining: float) -> None:
        """A wait is never longer than what remains, nor negative."""
        wait = PollSchedule(cap=cap).wait(attempt, remaining)
        assert 0.0 <= wait <= remaining

    @given(cap=caps, attempt=attempts)
    def test_unbounded_wait_is_the_delay(self, cap: float, attempt: int) -> None:
        """With no deadline the wait is the plain delay."""
        schedule = PollSchedule(cap=cap)
        assert schedule.wait(attempt, math.inf) == schedule.delay(attempt)

    # Up to tens of thousands of simulated steps: hypothesis's per-example wall-clock
    # deadline would only measure how busy the machine is.
    @settings(deadline=None)
    @given(
        start=instants,
        timeout=st.floats(min_value=0.0, max_value=5.0),
        cap=caps,
        cost=st.floats(min_value=0.0, max_value=0.5),
    )
    def test_simulated_waiting_ends_at_the_deadline(
        self, start: float, timeout: float, cap: float, cost: float
    ) -> None:
        """A waiter following the schedule never wakes after the deadline it was given."""
        clock = FakeClock(start)
        budget = Budget.starting_at(clock(), timeout)
        deadline = budget.deadline
        assert deadline is not None
        schedule = PollSchedule(cap=cap)
        attempt = 0
        while not budget.expired(clock()):
            clock.advance(cost)  # the check itself
            if budget.expired(clock()):
                break
            before = clock()
            clock.advance(schedule.wait(attempt, budget.remaining(clock())))
            assert clock() <= deadline or clock() == pytest.approx(deadline)
            assert clock() >= before
            attempt += 1
            assert attempt < 100_000


class TestAdaptiveCap:
    """The automatic cap follows the cost of a check, below the user's ``sleep``."""

    @given(cost=costs)
    def test_within_bounds(self, cost: float) -> None:
        """Left at the default, the automatic cap stays between 4 ms and the published 0.1 s."""
        assert MIN_AUTO_CAP <= adaptive_cap(cost) <= MAX_AUTO_CAP

    @given(cost=costs, ceiling=caps)
    def test_never_above_the_ceiling(self, cost: float, ceiling: float) -> None:
        """An explicit ``sleep`` is the longest gap, however costly the check."""
        assert adaptive_cap(cost, ceiling) <= ceiling

    @given(cost=costs, ceiling=caps)
    def test_never_below_the_floor(self, cost: float, ceiling: float) -> None:
        """No check is polled faster than every 4 ms, or a quarter of a shorter ``sleep``."""
        assert adaptive_cap(cost, ceiling) >= min(MIN_AUTO_CAP, ceiling / SHORT_SLEEP_SPEEDUP)

    @given(cost=costs, ceiling=st.floats(min_value=MAX_AUTO_CAP, max_value=60.0))
    def test_default_and_longer_sleeps_keep_the_share(self, cost: float, ceiling: float) -> None:
        """From the default ``sleep`` up, the cap is the 4 ms floor or 40 times the cost."""
        assert adaptive_cap(cost, ceiling) == min(ceiling, max(MIN_AUTO_CAP, cost * COST_RATIO))

    @given(
        cost=st.floats(min_value=0.0, max_value=1e-4),
        ceiling=st.floats(min_value=1e-4, max_value=MAX_AUTO_CAP),
    )
    def test_short_sleep_polls_faster_than_asked(self, cost: float, ceiling: float) -> None:
        """A short explicit ``sleep`` and a cheap check: at least four checks per ``sleep``."""
        assert adaptive_cap(cost, ceiling) <= max(
            ceiling / SHORT_SLEEP_SPEEDUP, MIN_AUTO_CAP, cost * COST_RATIO
        )
        if ceiling <= SHORT_SLEEP_SPEEDUP * MIN_AUTO_CAP:
            assert adaptive_cap(cost, ceiling) <= ceiling / SHORT_SLEEP_SPEEDUP * (1 + 1e-9)

    @given(cost=costs, more=costs, ceiling=caps)
    def test_monotonic(self, cost: float, more: float, ceiling: float) -> None:
        """A costlier check is never polled more eagerly."""
        assert adaptive_cap(cost + more, ceiling) >= adaptive_cap(cost, ceiling)

    @given(cost=st.floats(min_value=1e-7, max_value=100.0), ceiling=caps)
    def test_costly_checks_take_a_small_share(self, cost: float, ceiling: float) -> None:
        """Where ``sleep`` allows it, a check runs at most 1/COST_RATIO of the time (a
        proportionally larger share for a ``sleep`` shorter than the default)."""
        cap = adaptive_cap(cost, ceiling)
        ratio = COST_RATIO * min(1.0, ceiling / MAX_AUTO_CAP)
        if cost * ratio <= ceiling:
            assert cost / cap <= 1 / ratio * (1 + 1e-9)
        else:
            assert cap == ceiling

    @given(cost=st.floats(min_value=0.0, max_value=MIN_AUTO_CAP / COST_RATIO), ceiling=caps)
    def test_cheap_checks_sit_at_the_floor(self, cost: float, ceiling: float) -> None:
        """A cheap check is polled every 4 ms (or a quarter of a ``sleep`` under 16 ms)."""
        assert adaptive_cap(cost, ceiling) == pytest.approx(
            min(MIN_AUTO_CAP, ceiling / SHORT_SLEEP_SPEEDUP)
        )

    @pytest.mark.parametrize(
        ("cost", "ceiling", "cap"),
        [
            (0.0, MAX_AUTO_CAP, MIN_AUTO_CAP),
            (0.0005, MAX_AUTO_CAP, 0.02),
            (0.01, MAX_AUTO_CAP, MAX_AUTO_CAP),
            (0.01, 1.0, 0.4),
            (0.0001, 0.05, MIN_AUTO_CAP),
            (0.0001, 0.01, 0.0025),
            (0.0002, 0.01, 0.0025),
            (0.002, 0.01, 0.008),
            (0.0001, 0.002, 0.0005),
        ],
    )
    def test_examples(self, cost: float, ceiling: float, cap: float) -> None:
        """Cheap checks poll every 4 ms (a quarter of a short ``sleep``); slow ones back
        off, to ``sleep`` at most."""
        assert adaptive_cap(cost, ceiling) == pytest.approx(cap)


def simulate_detection(ready_at: float, sleep: float, cost: float) -> tuple[float, float]:
    """Follow the schedule as the waiter does; return (detection lag, longest gap).

    The readiness becomes true at ``ready_at``; each check takes ``cost`` of fake time
    and is what the adaptive cap is computed from, exactly as ``wait_until`` does.
    """
    clock = FakeClock()
    schedule = PollSchedule(cap=sleep)
    attempt = 0
    longest = 0.0
    cap = schedule.cap
    while True:
        began = clock()
        clock.advance(cost)
        if began >= ready_at:
            return clock() - ready_at, longest
        if attempt > 0:
            cap = adaptive_cap(cost, schedule.cap)
        gap = min(schedule.wait(attempt, math.inf), cap)
        longest = max(longest, gap)
        clock.advance(gap)
        attempt += 1
        assert attempt < 10_000_000


class TestSimulatedLag:
    """Detection lag and gaps of a waiter following the schedule, on a fake clock."""

    @settings(max_examples=60, deadline=None)
    @given(
        ready_at=st.floats(min_value=0.0, max_value=6.0),
        cost=st.floats(min_value=0.0, max_value=MIN_AUTO_CAP / COST_RATIO),
    )
    def test_default_lag_stays_at_the_floor(self, ready_at: float, cost: float) -> None:
        """With the default ``sleep``, readiness after 0.25 s or 5 s is seen within 4 ms."""
        lag, _ = simulate_detection(ready_at, MAX_AUTO_CAP, cost)
        assert lag <= MIN_AUTO_CAP + 2 * cost + 1e-9

    @settings(max_examples=60, deadline=None)
    @given(
        ready_at=st.floats(min_value=0.0, max_value=3.0),
        sleep=st.floats(min_value=0.002, max_value=0.5),
        cost=st.floats(min_value=0.0, max_value=0.01),
    )
    def test_explicit_sleep_is_the_longest_gap(
        self, ready_at: float, sleep: float, cost: float
    ) -> None:
        """An explicit ``sleep`` bounds every gap, so lag never exceeds sleep + one check."""
        lag, longest = simulate_detection(ready_at, sleep, cost)
        assert longest <= sleep
        assert lag <= sleep + 2 * cost + 1e-9

    @settings(max_examples=60, deadline=None)
    @given(
        ready_at=st.floats(min_value=0.0, max_value=3.0),
        sleep=st.floats(min_value=0.002, max_value=SHORT_SLEEP_SPEEDUP * MIN_AUTO_CAP),
        cost=st.floats(min_value=0.0, max_value=1e-4),
    )
    def test_short_sleep_lag_is_a_quarter_of_it(
        self, ready_at: float, sleep: float, cost: float
    ) -> None:
        """With ``sleep`` of 20 ms or less and cheap checks, no lag exceeds sleep / 4 (or the
        first 1 ms pause, taken before any cost is known)."""
        lag, longest = simulate_detection(ready_at, sleep, cost)
        gap = max(sleep / SHORT_SLEEP_SPEEDUP, min(FIRST_DELAY, sleep))
        assert longest <= gap * (1 + 1e-9)
        assert lag <= gap + 2 * cost + 1e-9


class TestValidation:
    """A schedule refuses values that would spin or never poll."""

    @pytest.mark.parametrize("cap", [0, -0.1, math.nan, math.inf])
    def test_bad_cap(self, cap: float) -> None:
        """A cap (the user's ``sleep``) must be a finite number of seconds above zero."""
        with pytest.raises(ValueError, match=r"^sleep must be"):
            PollSchedule(cap=cap)

    def test_bad_growth(self) -> None:
        """A shrinking schedule is refused."""
        with pytest.raises(ValueError, match="growth"):
            PollSchedule(growth=0.5)

    def test_non_number_cap(self) -> None:
        """A cap must be a number."""
        with pytest.raises(TypeError, match="sleep"):
            PollSchedule(cap="1")  # type: ignore[arg-type]


class TestEventSchedule:
    """Event-driven readiness is checked on events, with a rare timed safety net."""

    @given(st.integers(min_value=0, max_value=10_000))
    def test_every_delay_is_the_safety_net(self, attempt: int) -> None:
        """No ramp of short waits: each timed check comes a full safety net apart."""
        assert event_schedule().delay(attempt) == EVENT_SAFETY_NET

    @given(st.integers(min_value=0, max_value=10_000), durations)
    def test_never_past_the_deadline(self, attempt: int, remaining: float) -> None:
        """The safety net never sleeps past the remaining budget."""
        assert event_schedule().wait(attempt, remaining) <= max(0.0, remaining)


class TestStretched:
    """A long polled wait's gap grows with the time already waited, within bounds."""

    @given(gap=caps, waited=costs, ceiling=caps)
    def test_never_shorter_than_the_cost_allows(
        self, gap: float, waited: float, ceiling: float
    ) -> None:
        """Stretching only ever lengthens the gap the check's cost asked for."""
        assert stretched(gap, waited, ceiling) >= gap

    @given(gap=caps, waited=costs, ceiling=caps)
    def test_never_past_the_limit_or_sleep(self, gap: float, waited: float, ceiling: float) -> None:
        """The stretch stops at its limit, a share of ``sleep``: never a longer gap than
        ``sleep`` asks for, however long the wait."""
        grown = stretched(gap, waited, ceiling)
        assert grown <= max(gap, stretch_limit(ceiling))
        assert stretch_limit(ceiling) <= ceiling
        if gap <= ceiling:
            assert grown <= ceiling

    @given(gap=caps, waited=costs, more=costs, ceiling=caps)
    def test_grows_with_the_time_waited(
        self, gap: float, waited: float, more: float, ceiling: float
    ) -> None:
        """A longer wait never gets a shorter gap."""
        assert stretched(gap, waited + more, ceiling) >= stretched(gap, waited, ceiling)

    @given(gap=caps, waited=costs, ceiling=caps)
    def test_changes_only_where_it_says(self, gap: float, waited: float, ceiling: float) -> None:
        """Between ``waited`` and :func:`stretch_ends` the gap stays what it is, and it
        is longer from there on (what lets a simulation skip the turns between)."""
        ends = stretch_ends(gap, waited, ceiling)
        now = stretched(gap, waited, ceiling)
        assert ends > waited
        if math.isfinite(ends):
            assert stretched(gap, math.nextafter(ends, 0.0), ceiling) == now
            assert stretched(gap, ends, ceiling) > now
        else:
            assert stretched(gap, waited * 4 + 1e6, ceiling) == now

    @given(waited=st.floats(min_value=0.0, max_value=1000.0, allow_nan=False))
    def test_prompt_then_doubling(self, waited: float) -> None:
        """At the default sleep a cheap check keeps its 4 ms gap for PROMPT_FOR seconds,
        then the gap doubles each time the time waited does, up to 40 ms: it stays under
        a thousandth of the time waited."""
        gap = stretched(MIN_AUTO_CAP, waited, MAX_AUTO_CAP)
        if waited < PROMPT_FOR:
            assert gap == MIN_AUTO_CAP
        else:
            assert MIN_AUTO_CAP < gap <= waited / 1000
            assert gap <= STRETCH_LIMIT * MAX_AUTO_CAP == pytest.approx(0.04)

    def test_the_steps(self) -> None:
        """8 ms from 10 s, 16 ms from 20 s, 32 ms from 40 s, 40 ms from 80 s."""
        steps = [stretched(MIN_AUTO_CAP, t, MAX_AUTO_CAP) for t in (9.99, 10, 20, 40, 80)]
        assert steps == pytest.approx([0.004, 0.008, 0.016, 0.032, 0.04])
