"""When to poll next: start fast, back off to a cap, never sleep past the deadline."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from mirakuru.core.validate import check_positive

__all__ = [
    "EVENT_SAFETY_NET",
    "SHORT_SLEEP_SPEEDUP",
    "PollSchedule",
    "adaptive_cap",
    "event_schedule",
]

#: First wait: readiness that happens just after spawn is seen about a millisecond later.
FIRST_DELAY = 0.001
#: Each wait is this much longer than the previous one, up to the cap.
GROWTH = 1.5
#: Floor of the automatic cap: a cheap check every 4 ms is seen ~2 ms late on average, a
#: twentieth of the published 0.1 s polling. (At 5 ms, an HTTP server's own ~1 ms to answer
#: its first request put the lag at about 0.09 of published's, and measured ratios
#: straddled 0.1. The price, on a 2-vCPU VM: 2 s of checks cost 22-31 ms of CPU instead of
#: 18-25, since a wake-up after a shorter sleep is a little cheaper.)
MIN_AUTO_CAP = 0.004
#: Ceiling of the automatic cap when the user gave no ``sleep``: never poll more lazily
#: than the published 0.1 s default.
MAX_AUTO_CAP = 0.1
#: The automatic cap spends at most 1/COST_RATIO of the time inside the check itself. A
#: wake-up measures 50-250 µs of CPU (cold caches after the pause, not the connect, are
#: most of it), so 2.5% of a core keeps such checks at the 4 ms floor: the trade is a
#: little more waiting CPU than published for a tenth of its detection lag.
COST_RATIO = 40.0
#: Between checks of readiness that only the child's output or exit can change (banners,
#: sd_notify): both wake the waiter at once, so a timed check is a safety net, not polling.
EVENT_SAFETY_NET = 1.0
#: A ``sleep`` shorter than the default asks for prompt detection: a cheap check is then
#: polled this many times as often as asked, so the lag (half a gap, on average) is an
#: eighth of the ``sleep`` rather than the half that polling every ``sleep`` gives.
SHORT_SLEEP_SPEEDUP = 4.0


def adaptive_cap(attempt_cost: float, ceiling: float = MAX_AUTO_CAP) -> float:
    """The longest pause between checks, from what a check costs, never above ``ceiling``.

    A cheap check is polled every 4 ms however long the wait already was, so a service
    that takes 5 s is seen as promptly as one that takes 0.25 s; an expensive one (a user
    check spawning ``pg_ctl status``) backs off to run at most 2.5% of the time.
    ``ceiling`` is the user's ``sleep``, given or default: the longest gap. A ``sleep``
    below the default buys proportionally more CPU (at 0.01 s: 25% rather than 2.5%) and
    a floor of a quarter of it, so such a user never waits longer than with published
    polling at the same ``sleep``, even when the checks cost as much as its own.
    """
    share = COST_RATIO * min(1.0, ceiling / MAX_AUTO_CAP)
    floor = min(MIN_AUTO_CAP, ceiling / SHORT_SLEEP_SPEEDUP)
    return min(ceiling, max(floor, attempt_cost * share))


@attrs.frozen(slots=True)
class PollSchedule:
    """A pure schedule of delays between readiness attempts.

    ``cap`` is the longest delay: the user's ``sleep`` (0.1 s unless given), below which
    the waiter may poll a cheap check more often (see :func:`adaptive_cap`).
    """

    cap: float = attrs.field(default=MAX_AUTO_CAP)
    first: float = attrs.field(default=FIRST_DELAY)
    growth: float = attrs.field(default=GROWTH)

    def __attrs_post_init__(self) -> None:
        check_positive("sleep", self.cap)
        check_positive("first delay", self.first)
        if not self.growth >= 1.0:
            raise ValueError(f"growth must be >= 1.0, got {self.growth!r}")

    def delay(self, attempt: int) -> float:
        """The wait after attempt number ``attempt`` (0-based), ignoring any deadline."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        # Asked on every wake-up (hundreds a second while a port is polled): one power,
        # not a loop over the attempts; a power too large to represent is past the cap.
        try:
            delay = self.first * self.growth**attempt
        except OverflowError:
            return self.cap
        return min(delay, self.cap)

    def wait(self, attempt: int, remaining: float) -> float:
        """The wait after ``attempt``, never longer than the ``remaining`` budget."""
        return max(0.0, min(self.delay(attempt), remaining))

    def delays(self) -> Iterator[float]:
        """The infinite sequence of delays, for inspection and tests."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1


def event_schedule() -> PollSchedule:
    """The schedule of event-driven readiness: no ramp, one safety-net check a second."""
    return PollSchedule(cap=EVENT_SAFETY_NET, first=EVENT_SAFETY_NET)
