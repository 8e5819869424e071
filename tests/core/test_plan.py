"""The start plan: which schedule, which kind of wait, from an executor's settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core.budget import Budget
from mirakuru.core.plan import FAST_CHECKS, StartPlan, plan_start, watched_paths
from mirakuru.core.probes import (
    Probe,
    all_of,
    any_of,
    banner,
    http,
    pid_file,
    sd_notify,
    tcp,
    unix_socket,
)
from mirakuru.core.schedule import PollSchedule, event_schedule

EVENT_DRIVEN: list[Probe] = [banner("up"), sd_notify(), all_of(banner("a"), sd_notify())]
POLLED: list[Probe] = [
    tcp("127.0.0.1", 80),
    http("http://127.0.0.1/"),
    pid_file("/run/a.pid"),
    unix_socket("/run/a.sock"),
    any_of(banner("up"), tcp("127.0.0.1", 80)),
]


def plan(
    probe: Probe | None,
    *,
    sleep: float = 0.1,
    adaptive: bool = True,
    stock: bool = True,
    exits_wake: bool = True,
) -> StartPlan:
    """The plan of a 10 s start; by default a stock probe with exits as events."""
    return plan_start(
        timeout=10.0,
        sleep=sleep,
        adaptive=adaptive,
        probe=probe,
        stock=stock,
        exits_wake=exits_wake,
    )


class TestEventDriven:
    """Output and sd_notify readiness waits on events; timed checks are a safety net."""

    @pytest.mark.parametrize("probe", EVENT_DRIVEN, ids=repr)
    def test_default_sleep(self, probe: Probe) -> None:
        """With exits as events, one safety-net check a second, not adaptive."""
        made = plan(probe)
        assert made.event_driven
        assert (made.schedule, made.adaptive) == (event_schedule(), False)

    @pytest.mark.parametrize("probe", EVENT_DRIVEN, ids=repr)
    def test_explicit_sleep(self, probe: Probe) -> None:
        """An explicit sleep under a second changes nothing (a timed check cannot see what
        the events did not show); a longer one is the safety net's period."""
        short = plan(probe, sleep=0.3, adaptive=False)
        assert (short.schedule, short.adaptive) == (event_schedule(), False)
        long = plan(probe, sleep=2.5, adaptive=False)
        assert (long.schedule, long.adaptive) == (PollSchedule(cap=2.5, first=2.5), False)

    @pytest.mark.parametrize("probe", EVENT_DRIVEN, ids=repr)
    def test_exits_not_events(self, probe: Probe) -> None:
        """Without a pidfd, exits are found by polling fast (default sleep) or every sleep,
        not faster: the cheap check is not polled more often than asked."""
        assert plan(probe, exits_wake=False).schedule == FAST_CHECKS
        explicit = plan(probe, sleep=0.3, adaptive=False, exits_wake=False)
        assert (explicit.schedule, explicit.adaptive) == (PollSchedule(cap=0.3), False)
        short = plan(probe, sleep=0.01, adaptive=False, exits_wake=False)
        assert (short.schedule, short.adaptive) == (PollSchedule(cap=0.01), False)

    def test_custom_check_is_polled(self) -> None:
        """A class's own check around the probe makes it a polled wait."""
        made = plan(banner("up"), stock=False)
        assert not made.event_driven
        assert (made.schedule, made.adaptive) == (PollSchedule(cap=0.1), True)


class TestPolled:
    """Everything else polls on an adaptive schedule capped by sleep."""

    @given(probe=st.sampled_from([*POLLED, None]), sleep=st.floats(0.001, 5.0))
    def test_polled(self, probe: Probe | None, sleep: float) -> None:
        """Ports, URLs, files, sockets, mixes with them, and no probe at all."""
        made = plan(probe, sleep=sleep, adaptive=False)
        assert not made.event_driven
        assert (made.schedule, made.adaptive) == (PollSchedule(cap=sleep), True)


class TestWatchedAndBudget:
    """What the wait watches, and the one deadline."""

    def test_watched_paths(self) -> None:
        """Pid files and unix sockets are watched, in order; nothing else is."""
        probe = all_of(pid_file("/run/a.pid"), tcp("::1", 5), unix_socket("/tmp/s"))
        assert watched_paths(probe) == ("/run/a.pid", "/tmp/s")
        assert plan(probe).watched == ("/run/a.pid", "/tmp/s")
        assert watched_paths(None) == ()

    @given(now=st.floats(0.0, 1e6), timeout=st.none() | st.floats(0.0, 1e4))
    def test_budget(self, now: float, timeout: float | None) -> None:
        """The plan's budget is the timeout armed at the given reading."""
        made = plan_start(
            timeout=timeout, sleep=0.1, adaptive=True, probe=None, stock=False, exits_wake=True
        )
        assert made.budget(now) == Budget.starting_at(now, timeout)
