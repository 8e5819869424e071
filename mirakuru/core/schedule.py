"""When to poll next: start fast, back off to a cap, never sleep past the deadline."""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs

from mirakuru.core.validate import check_positive

__all__ = [
    "EVENT_SAFETY_NET",
    "PROMPT_FOR",
    "SHORT_SLEEP_SPEEDUP",
    "STRETCH_LIMIT",
    "PollSchedule",
    "adaptive_cap",
    "event_schedule",
    "stretch_ends",
    "stretch_limit",
    "stretched",
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
#: For this long a polled wait keeps the gap its check's cost allows (4 ms for a cheap
#: one: a lag of a tenth of published's); then the gap doubles each time the time waited
#: doubles (8 ms from 10 s, 16 ms from 20 s, 32 ms from 40 s). A wake-up of a sleeping
#: thread costs 25-35 us of CPU on a 2-vCPU VM even in C (50-75 us in Python) before any
#: check runs, so a flat 4 ms gap through a minute-long start (a database in a container)
#: spent ten times published's CPU. Stretched, a minute's wait makes 5,600 checks, not
#: 15,000, and the gap stays under a thousandth of the time waited.
PROMPT_FOR = 10.0
#: The stretched gap never exceeds this share of ``sleep`` (40 ms at the default): a
#: service that takes minutes is still seen ~20 ms after it is ready, not 50.
STRETCH_LIMIT = 0.4
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


def stretch_limit(ceiling: float) -> float:
    """The longest gap the time waited stretches a cheap check's gap to, for ``sleep``
    ``ceiling`` (40 ms at the default)."""
    return ceiling * STRETCH_LIMIT


def _doublings(waited: float) -> tuple[int, float]:
    """How many times the gap has doubled after ``waited`` seconds, and when (in time
    waited) it doubles next."""
    times, threshold = 0, PROMPT_FOR
    while waited >= threshold and times < 64:
        times += 1
        threshold *= 2.0
    return times, threshold


def stretched(gap: float, waited: float, ceiling: float) -> float:
    """The gap between checks after ``waited`` seconds of a wait whose checks' cost
    allows ``gap`` (see :func:`adaptive_cap`): ``gap`` for the first :data:`PROMPT_FOR`
    seconds, then doubled each time the time waited doubles, never above
    :func:`stretch_limit` of ``ceiling`` (the ``sleep``) unless ``gap`` already is."""
    if not waited >= PROMPT_FOR:  # the common case, asked on every wake-up: no loop
        return gap
    times, _ = _doublings(waited)
    grown = min(gap * 2.0**times, stretch_limit(ceiling))
    return grown if grown > gap else gap


def stretch_ends(gap: float, waited: float, ceiling: float) -> float:
    """The time waited at which :func:`stretched` next changes ``gap`` after ``waited``
    seconds (infinite once it has stopped growing)."""
    if gap * 2.0 ** _doublings(waited)[0] >= stretch_limit(ceiling):
        return math.inf
    return _doublings(waited)[1]


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
