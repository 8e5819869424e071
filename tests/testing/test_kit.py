"""The kit's smaller tools: the fake clock, the lifecycle assertion, the strategies."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru import OutputExecutor, State, StateChange, Trigger
from mirakuru.core.budget import Budget
from mirakuru.core.probes import Banner, Probe, SdNotify, leaves, only_event_driven
from mirakuru.core.schedule import PollSchedule
from mirakuru.testing import FakeClock, assert_lifecycle, lifecycle_path, simulate_start
from mirakuru.testing.strategies import (
    POLLED_KINDS,
    budgets,
    poll_schedules,
    probes,
    sleeps,
    timeouts,
)
from tests.helpers import python_command


class TestFakeClock:
    """A clock that moves only when told."""

    def test_reads_and_moves(self) -> None:
        """It reads its start, moves forward by advance(), sleep() and advance_to()."""
        clock = FakeClock(5.0)
        assert clock() == clock.now == 5.0
        assert clock.advance(1.5) == 6.5
        clock.sleep(0.5)
        assert clock.advance_to(10.0) == 10.0
        assert clock() == 10.0
        assert repr(clock) == "FakeClock(10.0)"

    @pytest.mark.parametrize(
        ("move", "error"),
        [
            (lambda c: c.advance(-1), ValueError),
            (lambda c: c.advance("1"), TypeError),
            (lambda c: c.advance_to(4.0), ValueError),
            (lambda c: FakeClock(float("nan")), ValueError),
            (lambda c: FakeClock("0"), TypeError),  # type: ignore[arg-type]
        ],
    )
    def test_never_goes_back(self, move: object, error: type[Exception]) -> None:
        """Going back, or moving by nonsense, is refused."""
        assert callable(move)
        with pytest.raises(error):
            move(FakeClock(5.0))

    @given(steps=st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=20))
    def test_budget_on_a_fake_clock(self, steps: list[float]) -> None:
        """Injected where a reading is taken, it drives a budget: expired exactly when
        the advances add up to the timeout."""
        clock = FakeClock()
        budget = Budget.starting_at(clock(), 50.0)
        for step in steps:
            clock.advance(step)
            assert budget.expired(clock()) == (clock() >= 50.0)


class TestAssertLifecycle:
    """The lifecycle assertion passes on the right path and explains a wrong one."""

    def test_real_executor(self) -> None:
        """A started and stopped executor went idle → starting → running → stopping → stopped."""
        service = OutputExecutor(
            python_command("print('up', flush=True); import time; time.sleep(30)"),
            banner="^up$",
            timeout=10,
        )
        assert_lifecycle(service, "idle")
        with service:
            assert_lifecycle(service, "idle → starting → running")
        assert_lifecycle(service, "idle -> starting -> running -> stopping -> stopped")

    def test_diff(self) -> None:
        """A mismatch names the step, shows both paths, marks the state, lists the history."""
        result = simulate_start(OutputExecutor(["x"], banner="^up$", timeout=2), ready_after=None)
        with pytest.raises(AssertionError) as raised:
            assert_lifecycle(result, "idle → starting → running → stopping → stopped")
        message = str(raised.value)
        assert "differs at state 3: expected running, got failed" in message
        assert "  expected: idle → starting → running → stopping → stopped" in message
        assert "  actual:   idle → starting → failed" in message
        assert "                              ^^^^^^" in message
        assert "starting -> failed on fail (timed out after 2 s)" in message

    def test_too_short_and_too_long(self) -> None:
        """A path that ends early, or goes on, is explained as such."""
        changes = [StateChange(Trigger.START, State.IDLE, State.STARTING, 0.0)]
        with pytest.raises(AssertionError, match="ends where running was expected"):
            assert_lifecycle(changes, "idle → starting → running")
        with pytest.raises(AssertionError, match="expected the path to end before starting"):
            assert_lifecycle(changes, "idle")

    def test_notes_are_left_out(self) -> None:
        """sd_notify notes change no state and are not part of the path."""
        changes = [
            StateChange(Trigger.START, State.IDLE, State.STARTING, 0.0),
            StateChange(Trigger.NOTIFY, State.STARTING, State.STARTING, 0.1, "STATUS=warming"),
            StateChange(Trigger.READY, State.STARTING, State.RUNNING, 0.2),
        ]
        assert lifecycle_path(changes) == "idle → starting → running"

    @pytest.mark.parametrize(
        ("expected", "error", "message"),
        [
            ("idle → sleeping", ValueError, "unknown state 'sleeping'"),
            (3, TypeError, "expected must be a path"),
        ],
    )
    def test_bad_path(self, expected: object, error: type[Exception], message: str) -> None:
        """A path naming no state is an error, not a failed assertion."""
        with pytest.raises(error, match=message):
            assert_lifecycle([], expected)  # type: ignore[arg-type]


class TestStrategies:
    """The public strategies make valid values of the kinds asked for."""

    @given(probes(["banner", "sd_notify"]))
    def test_event_kinds(self, probe: Probe) -> None:
        """Banners and sd_notify only: every probe is event-driven."""
        assert only_event_driven(probe)
        assert all(isinstance(leaf, Banner | SdNotify) for leaf in leaves(probe))

    @given(probes(POLLED_KINDS, max_leaves=1))
    def test_polled_leaf(self, probe: Probe) -> None:
        """TCP and HTTP leaves alone are polled."""
        assert not only_event_driven(probe)

    @given(budgets(now=10.0, max_timeout=5.0), poll_schedules(max_cap=0.5), sleeps())
    def test_values(self, budget: Budget, schedule: PollSchedule, sleep: float) -> None:
        """Budgets start at ``now``, schedules respect their cap, sleeps are positive."""
        assert budget.deadline is None or 10.0 <= budget.deadline <= 15.0
        assert schedule.cap <= 0.5
        assert sleep > 0

    @given(timeouts(max_value=3.0))
    def test_timeouts(self, timeout: float | None) -> None:
        """Without allow_none, a timeout is a bounded number."""
        assert timeout is not None
        assert 0.0 <= timeout <= 3.0

    def test_bad_kind(self) -> None:
        """An unknown kind is named in the error."""
        with pytest.raises(ValueError, match="unknown probe kind 'redis'"):
            probes(["redis"])  # type: ignore[list-item]

    def test_hypothesis_is_optional(self) -> None:
        """Without hypothesis, mirakuru.testing imports, and the strategies module says
        what to install."""
        code = (
            "import sys; sys.modules['hypothesis'] = None\n"
            "import mirakuru.testing\n"
            "try:\n"
            "    import mirakuru.testing.strategies\n"
            "except ImportError as error:\n"
            "    print(error)\n"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert "pip install 'mirakuru[testing]'" in output
