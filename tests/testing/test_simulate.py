"""Properties of start-up, proved through the public kit on a virtual clock.

Every example builds a real executor object (nothing is spawned) and asks
:func:`mirakuru.testing.simulate_start` what its ``start()`` would do.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mirakuru import (
    Executor,
    HTTPExecutor,
    OutputExecutor,
    PidExecutor,
    SimpleExecutor,
    TCPExecutor,
    UnixSocketExecutor,
    probes,
)
from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.readiness.inotify import watches_available
from mirakuru.core import schedule
from mirakuru.core.probes import Probe
from mirakuru.testing import (
    EXIT_WAKE,
    NOTIFY_WAKE,
    OUTPUT_WAKE,
    WATCH_WAKE,
    FakeClock,
    NeverReturns,
    assert_lifecycle,
    simulate_start,
)
from mirakuru.testing.strategies import (
    EVENT_DRIVEN_KINDS,
    KINDS,
    POLLED_KINDS,
    durations,
    sleeps,
)
from mirakuru.testing.strategies import (
    probes as probe_trees,
)

#: The longest an event takes to wake a waiting start, in the simulation.
EVENT_LAG = max(OUTPUT_WAKE, NOTIFY_WAKE, WATCH_WAKE)
#: Room for float rounding in sums of virtual seconds.
ROUNDING = 1e-9

timeouts = durations(max_value=120.0)
optional_sleeps = st.none() | sleeps(max_value=2.0)
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)

needs_watches = pytest.mark.skipif(
    not watches_available(), reason="pid files and sockets are only polled here"
)
needs_pidfd = pytest.mark.skipif(not capabilities().pidfd, reason="no pidfd: exits are polled")


def executor(probe: Probe, timeout: float | None, sleep: float | None) -> Executor:
    """An executor waiting for ``probe``; ``sleep`` None leaves it at its default."""
    if sleep is None:
        return Executor(["service"], ready=probe, timeout=timeout)
    return Executor(["service"], ready=probe, timeout=timeout, sleep=sleep)


def longest_gap(sleep: float | None) -> float:
    return 0.1 if sleep is None else sleep


class TestReadinessSeen:
    """Readiness before the deadline is seen promptly."""

    @given(probe_trees(POLLED_KINDS), timeouts, optional_sleeps, fractions)
    def test_polled_within_one_sleep(
        self, probe: Probe, timeout: float, sleep: float | None, fraction: float
    ) -> None:
        """A polled probe (TCP, HTTP) ready at any instant that leaves one ``sleep``
        before the deadline is seen within one ``sleep``, and never before it is ready."""
        ready_after = fraction * timeout
        assume(ready_after + longest_gap(sleep) < timeout)
        result = simulate_start(executor(probe, timeout, sleep), ready_after=ready_after)
        assert result.outcome == "ready"
        assert ready_after <= result.returned_at <= ready_after + longest_gap(sleep) + ROUNDING
        assert_lifecycle(result, "idle → starting → running")

    @given(
        probe_trees(POLLED_KINDS),
        timeouts,
        optional_sleeps,
        fractions,
        durations(max_value=0.05),
    )
    def test_slow_checks(
        self, probe: Probe, timeout: float, sleep: float | None, fraction: float, took: float
    ) -> None:
        """Checks that take time: readiness is still seen within one ``sleep`` plus two
        checks (the one under way when it came, and the one that sees it)."""
        ready_after = fraction * timeout
        bound = longest_gap(sleep) + 2 * took
        assume(ready_after + bound < timeout)
        service = executor(probe, timeout, sleep)
        result = simulate_start(service, ready_after=ready_after, check_duration=took)
        assert result.outcome == "ready"
        assert ready_after <= result.returned_at <= ready_after + bound + ROUNDING

    @needs_watches
    @given(probe_trees(EVENT_DRIVEN_KINDS), timeouts, optional_sleeps, fractions)
    def test_event_driven_within_a_millisecond(
        self, probe: Probe, timeout: float, sleep: float | None, fraction: float
    ) -> None:
        """Banners, pid files, unix sockets and sd_notify (and their combinations) are
        seen within the event's wake-up, about a millisecond, whatever the ``sleep``."""
        ready_after = fraction * timeout
        assume(ready_after + EVENT_LAG < timeout)
        result = simulate_start(executor(probe, timeout, sleep), ready_after=ready_after)
        assert result.outcome == "ready"
        assert ready_after <= result.returned_at <= ready_after + EVENT_LAG + ROUNDING

    @needs_watches
    @pytest.mark.parametrize(
        ("made", "lag"),
        [
            (lambda: OutputExecutor(["service"], banner="^up$", timeout=30), OUTPUT_WAKE),
            (lambda: PidExecutor(["service"], "/tmp/service.pid", timeout=30), WATCH_WAKE),
            (lambda: UnixSocketExecutor(["service"], "/tmp/service.sock", timeout=30), WATCH_WAKE),
            (lambda: Executor(["service"], ready=probes.sd_notify(), timeout=30), NOTIFY_WAKE),
        ],
        ids=["banner", "pid_file", "unix_socket", "sd_notify"],
    )
    def test_event_driven_executors(self, made: object, lag: float) -> None:
        """Each event-driven executor class is woken by its own event, ``lag`` after it
        (a pid file or socket may be found sooner by a check: they are polled too)."""
        assert callable(made)
        result = simulate_start(made(), ready_after=12.5)
        assert 12.5 <= result.returned_at <= 12.5 + lag + ROUNDING

    @given(st.sampled_from(POLLED_KINDS), fractions)
    def test_published_polled_executors(self, kind: str, fraction: float) -> None:
        """TCPExecutor and HTTPExecutor at ``timeout=30, sleep=0.5``: seen within 0.5 s."""
        if kind == "tcp":
            made: Executor = TCPExecutor(["db"], "127.0.0.1", 5432, timeout=30, sleep=0.5)
        else:
            made = HTTPExecutor(["web"], "http://127.0.0.1:8080/", timeout=30, sleep=0.5)
        ready_after = fraction * 29.5
        result = simulate_start(made, ready_after=ready_after)
        assert result.outcome == "ready"
        assert result.returned_at - ready_after <= 0.5

    def test_ready_at_once_is_one_check(self) -> None:
        """A service ready when spawned is seen by the first check, at 0."""
        result = simulate_start(TCPExecutor(["db"], "127.0.0.1", 5432), ready_after=0)
        assert (result.outcome, result.returned_at, result.checks) == ("ready", 0.0, 1)


class TestTimeout:
    """A service that is never ready times out at the deadline."""

    @given(probe_trees(KINDS), timeouts, optional_sleeps)
    def test_at_the_deadline(self, probe: Probe, timeout: float, sleep: float | None) -> None:
        """Never ready: the start gives up exactly at ``timeout``, after at least one check,
        noting the timeout in the history."""
        result = simulate_start(executor(probe, timeout, sleep), ready_after=None)
        assert result.outcome == "timed_out"
        assert result.returned_at == pytest.approx(timeout, abs=ROUNDING)
        assert result.checks >= 1
        assert_lifecycle(result, "idle → starting → failed")
        assert result.history[-1].detail == f"timed out after {timeout} s"

    @given(probe_trees(POLLED_KINDS), timeouts, optional_sleeps)
    def test_ready_too_late(self, probe: Probe, timeout: float, sleep: float | None) -> None:
        """Readiness at the deadline or after it is a timeout."""
        result = simulate_start(executor(probe, timeout, sleep), ready_after=timeout)
        assert result.outcome in ("timed_out", "ready")
        if result.outcome == "ready":  # timeout=0 still makes its one check, at 0
            assert timeout == 0

    def test_an_hour_is_simulated_at_once(self) -> None:
        """The default timeout (an hour of polling, every 40 ms once the gap has
        stretched) takes no noticeable time: the quiet stretch is skipped, its checks
        still counted."""
        result = simulate_start(TCPExecutor(["db"], "127.0.0.1", 5432), ready_after=None)
        assert result.returned_at == 3600
        assert 3600 / schedule.stretch_limit(0.1) < result.checks < 3600 / 0.004

    def test_no_timeout_and_never_ready(self) -> None:
        """Without a timeout, a script that never ends the start is refused, not looped."""
        with pytest.raises(NeverReturns, match="never return"):
            simulate_start(TCPExecutor(["db"], "127.0.0.1", 5432, timeout=None), ready_after=None)


class TestEarlyExit:
    """An early exit is seen at once."""

    @needs_pidfd
    @given(probe_trees(KINDS), timeouts, optional_sleeps, fractions, st.integers(1, 255))
    def test_error_exit_seen_at_once(
        self, probe: Probe, timeout: float, sleep: float | None, fraction: float, code: int
    ) -> None:
        """A non-zero exit before readiness fails the start within the exit's wake-up."""
        exits_after = fraction * timeout
        assume(exits_after + EXIT_WAKE < timeout)
        result = simulate_start(
            executor(probe, timeout, sleep),
            ready_after=None,
            exits_after=exits_after,
            exit_code=code,
        )
        assert result.outcome == "exited"
        assert result.exit_code == code
        assert exits_after <= result.returned_at <= exits_after + EXIT_WAKE + ROUNDING
        assert result.history[-1].detail == f"exited with code {code}"

    @needs_pidfd
    @given(timeouts, fractions)
    def test_banner_never_printed(self, timeout: float, fraction: float) -> None:
        """Exit code 0 before the banner ends the output: the start fails at once."""
        exits_after = fraction * timeout
        assume(exits_after + EXIT_WAKE < timeout)
        waiting = OutputExecutor(["service"], banner="^up$", timeout=timeout)
        result = simulate_start(waiting, ready_after=None, exits_after=exits_after)
        assert (result.outcome, result.exit_code) == ("exited", 0)
        assert result.returned_at <= exits_after + EXIT_WAKE + ROUNDING
        assert result.history[-1].detail == "output ended without the banner (exit code 0)"

    def test_launcher_exit_zero(self) -> None:
        """A launcher that exits 0 leaving its service running does not fail a polled
        start; the leader's exit is noted."""
        service = TCPExecutor(["launcher"], "127.0.0.1", 5432, timeout=10)
        result = simulate_start(
            service, ready_after=2.0, exits_after=0.5, exit_code=0, leaves_running=True
        )
        assert result.outcome == "ready"
        gap = schedule.stretched(schedule.MIN_AUTO_CAP, 2.0, 0.1)
        assert result.returned_at == pytest.approx(2.0, abs=gap + 0.0001)
        assert any("its processes live on" in str(change.detail) for change in result.history)

    def test_exit_zero_leaving_nothing_fails_at_once(self) -> None:
        """The scripted process is the whole service: exiting 0 before it was ready fails
        the start when the exit is seen, not at the deadline."""
        service = TCPExecutor(["db"], "127.0.0.1", 5432, timeout=10)
        result = simulate_start(service, ready_after=2.0, exits_after=0.5, exit_code=0)
        assert result.outcome == "exited"
        assert result.returned_at == pytest.approx(0.5, abs=0.0041)
        assert result.history[-1].detail == "exited with status 0 and left nothing running"

    def test_exit_after_readiness_is_not_seen(self) -> None:
        """An exit after start() returned is not the start's business."""
        service = TCPExecutor(["db"], "127.0.0.1", 5432, timeout=10)
        result = simulate_start(service, ready_after=1.0, exits_after=5.0, exit_code=1)
        assert result.outcome == "ready"


class TestFollowsTheExecutor:
    """The simulation decides as the executor's own start would."""

    def test_the_schedule_is_shared(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Doubling the schedule's floor (which real starts use) halves the simulated checks
        of a wait that ends before the gap stretches."""
        service = TCPExecutor(["db"], "127.0.0.1", 5432, timeout=schedule.PROMPT_FOR - 1)
        before = simulate_start(service, ready_after=None).checks
        monkeypatch.setattr(schedule, "MIN_AUTO_CAP", 2 * schedule.MIN_AUTO_CAP)
        after = simulate_start(service, ready_after=None).checks
        assert after == pytest.approx(before / 2, rel=0.01)

    @given(optional_sleeps)
    def test_sleep_bounds_the_checks(self, sleep: float | None) -> None:
        """No more checks than the floor of the schedule allows: at most one per
        min(4 ms, sleep / 4), plus the ramp."""
        service = executor(probes.tcp("127.0.0.1", 5432), 10.0, sleep)
        floor = min(0.004, longest_gap(sleep) / 4)
        result = simulate_start(service, ready_after=None)
        assert result.checks <= math.ceil(10.0 / floor) + 20

    def test_custom_check_is_polled(self) -> None:
        """A subclass deciding readiness itself is polled like a port, within its sleep."""

        class Custom(Executor):
            def after_start_check(self) -> bool:
                return True

        result = simulate_start(Custom(["service"], timeout=10, sleep=0.2), ready_after=3.0)
        assert result.outcome == "ready"
        assert 3.0 <= result.returned_at <= 3.2

    def test_no_readiness_rule(self) -> None:
        """An Executor without a probe or a check fails as its start() would."""
        with pytest.raises(NotImplementedError):
            simulate_start(Executor(["service"]), ready_after=1.0)

    def test_simple_executor_returns_at_once(self) -> None:
        """A SimpleExecutor waits for nothing: ready at 0, no checks."""
        result = simulate_start(SimpleExecutor(["service"]), ready_after=5.0)
        assert (result.outcome, result.returned_at, result.checks) == ("ready", 0.0, 0)

    def test_executor_untouched(self) -> None:
        """Nothing is spawned, and the executor is as it was."""
        service = TCPExecutor(["db"], "127.0.0.1", 5432, timeout=1)
        simulate_start(service, ready_after=0.5)
        assert service.process is None
        assert service.history == ()
        assert service._budget is None

    def test_on_a_fake_clock(self) -> None:
        """Given a clock, the history is stamped with it and it ends where start() would."""
        clock = FakeClock(1000.0)
        service = OutputExecutor(["service"], banner="^up$", timeout=10)
        result = simulate_start(service, ready_after=2.0, clock=clock)
        assert clock() == pytest.approx(1002.0 + OUTPUT_WAKE)
        assert [change.at for change in result.history] == [1000.0, clock()]


class TestBadInput:
    """Bad arguments are refused with errors that name them."""

    @pytest.mark.parametrize(
        ("arguments", "error", "message"),
        [
            ({"ready_after": -1.0}, ValueError, "ready_after"),
            ({"ready_after": "1"}, TypeError, "ready_after"),
            ({"ready_after": 1.0, "exits_after": -0.5}, ValueError, "exits_after"),
            ({"ready_after": 1.0, "exit_code": True}, TypeError, "exit_code"),
            ({"ready_after": 1.0, "check_duration": -1.0}, ValueError, "check_duration"),
            ({"ready_after": 1.0, "check_cpu": -1.0}, ValueError, "check_cpu"),
        ],
    )
    def test_arguments(self, arguments: dict[str, object], error: type, message: str) -> None:
        """Negative or mistyped instants and codes are refused before anything runs."""
        service = TCPExecutor(["db"], "127.0.0.1", 5432)
        with pytest.raises(error, match=message):
            simulate_start(service, **arguments)  # type: ignore[arg-type]

    def test_not_an_executor(self) -> None:
        """Only executors can be simulated."""
        with pytest.raises(TypeError, match="needs an executor"):
            simulate_start("redis-server", ready_after=1.0)  # type: ignore[arg-type]
