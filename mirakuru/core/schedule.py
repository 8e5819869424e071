"""When to poll next: start fast, back off to a cap, never sleep past the deadline."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from mirakuru.core.validate import check_positive

__all__ = ["PollSchedule", "adaptive_cap"]

#: First wait: readiness that happens just after spawn is seen about a millisecond later.
FIRST_DELAY = 0.001
#: Each wait is this much longer than the previous one, up to the cap.
GROWTH = 1.5
#: Floor of the automatic cap: a cheap check (a TCP connect is ~20 µs of CPU plus the
#: wake-up) every 5 ms keeps the waiting process near 1% of one core.
MIN_AUTO_CAP = 0.005
#: Ceiling of the automatic cap: never poll more lazily than the published 0.1 s default.
MAX_AUTO_CAP = 0.1
#: The automatic cap spends at most 1/COST_RATIO of the time inside the check itself.
COST_RATIO = 100.0
#: The automatic cap also grows to this fraction of the time already waited: a service
#: that took 2 s to start is noticed on average 20 ms (1%) late without anyone caring,
#: and the polling that saves is CPU a slow start-up needs more.
LAG_FRACTION = 0.02


def adaptive_cap(attempt_cost: float, waited: float = 0.0) -> float:
    """The longest pause between checks, from what a check costs and how long we waited.

    A cheap check is polled every few milliseconds, keeping the waiting process near 1%
    of one core; an expensive one (a user check that spawns ``pg_ctl status``, say) backs
    off towards 0.1 s instead of eating a core; and a long wait relaxes towards 0.1 s
    too, keeping the average detection lag within about 1% of the start-up time.
    """
    wanted = max(MIN_AUTO_CAP, attempt_cost * COST_RATIO, waited * LAG_FRACTION)
    return min(MAX_AUTO_CAP, wanted)


@attrs.frozen(slots=True)
class PollSchedule:
    """A pure schedule of delays between readiness attempts.

    ``cap`` is the longest delay; an explicit ``sleep`` from the user becomes the cap.
    """

    cap: float = attrs.field(default=MIN_AUTO_CAP)
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
        delay = self.first
        # Multiplying step by step (bounded by the cap) avoids overflow for huge attempts.
        for _ in range(attempt):
            if delay >= self.cap:
                break
            delay *= self.growth
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
