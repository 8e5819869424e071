"""Property tests of the polling schedule and the adaptive cap, driven by a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core.budget import Budget
from mirakuru.core.schedule import (
    FIRST_DELAY,
    MAX_AUTO_CAP,
    MIN_AUTO_CAP,
    PollSchedule,
    adaptive_cap,
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
    """The automatic cap follows the cost of a check."""

    @given(cost=costs)
    def test_within_bounds(self, cost: float) -> None:
        """The automatic cap stays between 5 ms and the published 0.1 s."""
        assert MIN_AUTO_CAP <= adaptive_cap(cost) <= MAX_AUTO_CAP

    @given(cost=costs, more=costs)
    def test_monotonic(self, cost: float, more: float) -> None:
        """A costlier check is never polled more eagerly."""
        assert adaptive_cap(cost + more) >= adaptive_cap(cost)

    @pytest.mark.parametrize(
        ("cost", "cap"), [(0.0, MIN_AUTO_CAP), (0.0005, 0.05), (0.01, MAX_AUTO_CAP)]
    )
    def test_examples(self, cost: float, cap: float) -> None:
        """Cheap checks poll every 5 ms, slow ones back off to 0.1 s."""
        assert adaptive_cap(cost) == pytest.approx(cap)


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
