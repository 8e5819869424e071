"""Property tests of the timeout budget and the named timeouts, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core.budget import Budget, Timeouts
from tests.core.strategies import durations, instants, timeouts


class TestRemaining:
    """What a budget says is left."""

    @given(start=instants, timeout=durations, elapsed=durations)
    def test_never_negative(self, start: float, timeout: float, elapsed: float) -> None:
        """Remaining time is never below zero, however late it is."""
        assert Budget.starting_at(start, timeout).remaining(start + elapsed) >= 0.0

    @given(start=instants, timeout=timeouts, first=durations, later=durations)
    def test_never_grows(
        self, start: float, timeout: float | None, first: float, later: float
    ) -> None:
        """As time passes, the remaining time never increases."""
        budget = Budget.starting_at(start, timeout)
        earlier = budget.remaining(start + first)
        assert budget.remaining(start + first + later) <= earlier

    @given(start=instants, timeout=durations)
    def test_full_at_start(self, start: float, timeout: float) -> None:
        """Right at the start, the whole timeout remains (to float precision at ``start``)."""
        remaining = Budget.starting_at(start, timeout).remaining(start)
        assert remaining == pytest.approx(timeout, abs=1e-9)

    @given(start=instants, timeout=durations, elapsed=durations)
    def test_expired_iff_nothing_remains(
        self, start: float, timeout: float, elapsed: float
    ) -> None:
        """A budget is expired exactly when nothing remains."""
        budget = Budget.starting_at(start, timeout)
        now = start + elapsed
        assert budget.expired(now) == (budget.remaining(now) == 0.0)

    @given(start=instants)
    def test_zero_timeout_is_expired_at_once(self, start: float) -> None:
        """A zero timeout is already expired when armed."""
        assert Budget.starting_at(start, 0).expired(start)

    @pytest.mark.parametrize("timeout", [None, math.inf])
    @given(now=instants)
    def test_unbounded(self, timeout: float | None, now: float) -> None:
        """No timeout (None or infinity) means infinite time and never expiring."""
        for budget in (Budget.starting_at(0.0, timeout), Budget.unbounded()):
            assert budget.deadline is None
            assert budget.remaining(now) == math.inf
            assert not budget.expired(now)


class TestClamp:
    """The limit of one attempt within a budget."""

    @given(start=instants, timeout=timeouts, attempt=timeouts, elapsed=durations)
    def test_never_exceeds_remaining(
        self, start: float, timeout: float | None, attempt: float | None, elapsed: float
    ) -> None:
        """An attempt never gets more time than the budget has left."""
        budget = Budget.starting_at(start, timeout)
        now = start + elapsed
        assert budget.clamp(attempt, now) <= budget.remaining(now)

    @given(start=instants, timeout=timeouts, attempt=durations, elapsed=durations)
    def test_never_exceeds_attempt(
        self, start: float, timeout: float | None, attempt: float, elapsed: float
    ) -> None:
        """An attempt never gets more time than its own limit."""
        budget = Budget.starting_at(start, timeout)
        assert budget.clamp(attempt, start + elapsed) <= attempt

    @given(start=instants, timeout=timeouts, elapsed=durations)
    def test_no_attempt_limit_gets_the_rest(
        self, start: float, timeout: float | None, elapsed: float
    ) -> None:
        """Without an attempt limit, an attempt may use all that remains."""
        budget = Budget.starting_at(start, timeout)
        now = start + elapsed
        assert budget.clamp(None, now) == budget.remaining(now)


class TestChild:
    """Sub-budgets, such as one step of a longer start-up."""

    @given(
        start=instants,
        parent_timeout=timeouts,
        offset=durations,
        child_timeout=timeouts,
        elapsed=durations,
    )
    def test_never_outlives_parent(
        self,
        start: float,
        parent_timeout: float | None,
        offset: float,
        child_timeout: float | None,
        elapsed: float,
    ) -> None:
        """At any instant, a child has no more time left than its parent."""
        parent = Budget.starting_at(start, parent_timeout)
        born = start + offset
        child = parent.child(child_timeout, born)
        now = born + elapsed
        assert child.remaining(now) <= parent.remaining(now)
        if parent.expired(now):
            assert child.expired(now)

    @given(start=instants, child_timeout=durations, elapsed=durations)
    def test_of_unbounded_parent_is_its_own(
        self, start: float, child_timeout: float, elapsed: float
    ) -> None:
        """Under an unbounded parent a child keeps its own deadline."""
        child = Budget.unbounded().child(child_timeout, start)
        assert child == Budget.starting_at(start, child_timeout)


class TestStartingAtValidation:
    """Bad timeouts are refused with the field name and the value."""

    @pytest.mark.parametrize(
        ("value", "error"),
        [(-1, ValueError), (-0.001, ValueError), (math.nan, ValueError), ("3", TypeError)],
    )
    def test_refused(self, value: object, error: type[Exception]) -> None:
        """A negative, NaN or non-numeric timeout is refused, naming it."""
        with pytest.raises(error, match="timeout") as raised:
            Budget.starting_at(0.0, value)  # type: ignore[arg-type]
        assert repr(value) in str(raised.value)

    def test_bool_is_not_a_duration(self) -> None:
        """True is not a number of seconds, even though it is an int."""
        with pytest.raises(TypeError, match="timeout"):
            Budget.starting_at(0.0, True)


class TestTimeouts:
    """The named time limits of an executor."""

    @given(start=timeouts, stop=timeouts, attempt=timeouts)
    def test_grace_prefers_stop(
        self, start: float | None, stop: float | None, attempt: float | None
    ) -> None:
        """The grace period is the stop timeout when set, else the start timeout."""
        limits = Timeouts(start=start, stop=stop, attempt=attempt)
        assert limits.grace == (stop if stop is not None else start)

    def test_defaults(self) -> None:
        """By default start-up has an hour and stopping uses the same grace."""
        limits = Timeouts()
        assert (limits.start, limits.stop, limits.attempt) == (3600.0, None, None)
        assert limits.grace == 3600.0

    @pytest.mark.parametrize(
        ("field", "name"),
        [("start", "timeout"), ("stop", "stop_timeout"), ("attempt", "request_timeout")],
    )
    @pytest.mark.parametrize("value", [-1.0, math.nan])
    def test_refuses_bad_values(self, field: str, name: str, value: float) -> None:
        """Each field refuses negative and NaN values under the name users know it by."""
        with pytest.raises(ValueError, match=f"^{name} must be"):
            Timeouts(**{field: value})

    @given(value=st.text())
    def test_refuses_text(self, value: str) -> None:
        """A string is never a timeout."""
        with pytest.raises(TypeError):
            Timeouts(start=value)  # type: ignore[arg-type]
