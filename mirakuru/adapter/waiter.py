"""The waiter: one loop that wakes on events (exit, output) or on the poll schedule."""

from __future__ import annotations

import math
import select
from collections.abc import Callable, Iterable

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.sources import EventSource
from mirakuru.core.budget import Budget
from mirakuru.core.outcome import Ready, TimedOut
from mirakuru.core.schedule import PollSchedule, adaptive_cap

__all__ = ["wait_until"]


def wait_until(
    check: Callable[[], bool],
    budget: Budget,
    schedule: PollSchedule,
    *,
    sources: Iterable[EventSource] = (),
    adaptive: bool = True,
    clock: Callable[[], float] = monotonic,
) -> Ready | TimedOut:
    """Call ``check`` until it returns True or ``budget`` runs out.

    ``check`` runs at once, then again whenever one of ``sources`` becomes readable (after
    the source has consumed what it had) or the schedule's next delay passes, whichever is
    first. With ``adaptive``, the schedule's cap follows the measured cost of ``check`` so
    an expensive check never eats the CPU. The check always runs at least once, even with
    an already expired budget.
    """
    poller = select.poll()
    by_fd: dict[int, EventSource] = {}
    for source in sources:
        fd = source.fileno()
        by_fd[fd] = source
        poller.register(fd, select.POLLIN)
    attempt = 0
    while True:
        began = clock()
        if check():
            return Ready(attempt + 1)
        now = clock()
        if adaptive:
            schedule = schedule.with_cap(adaptive_cap(now - began))
        if budget.expired(now):
            return TimedOut(attempt + 1)
        delay = schedule.wait(attempt, budget.remaining(now))
        attempt += 1
        events = poller.poll(_milliseconds(delay))
        for fd, _ in events:
            found = by_fd.get(fd)
            if found is not None and not found.on_readable():
                poller.unregister(fd)
                del by_fd[fd]


def _milliseconds(seconds: float) -> int:
    if math.isinf(seconds):
        return -1
    # Round up: poll() takes whole milliseconds, and waking early only costs a re-check.
    return max(0, math.ceil(seconds * 1000))
