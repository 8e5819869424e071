"""The waiter: one loop that wakes on events (exit, output) or on the poll schedule."""

from __future__ import annotations

import math
import select
import time
from collections.abc import Callable, Iterable

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.sources import EventSource
from mirakuru.core.budget import Budget
from mirakuru.core.outcome import Ready, TimedOut
from mirakuru.core.schedule import PollSchedule, adaptive_cap

__all__ = ["wait_past_deadline", "wait_until"]


def wait_until(
    check: Callable[[], bool],
    budget: Budget,
    schedule: PollSchedule,
    *,
    sources: Iterable[EventSource] = (),
    hints: Iterable[EventSource] = (),
    adaptive: bool = True,
    clock: Callable[[], float] = monotonic,
    cost_clock: Callable[[], float] = time.thread_time,
) -> Ready | TimedOut:
    """Call ``check`` until it returns True or ``budget`` runs out.

    ``check`` runs at once, then again whenever one of ``sources`` or ``hints`` becomes
    readable (after the source has consumed what it had) or the schedule's next delay
    passes, whichever is first, unless the deadline has passed by then. An event from a
    hint (say, a file appearing in a watched directory) also restarts the schedule at its
    first, shortest delay, since readiness is probably moments away. With ``adaptive``,
    the schedule's cap follows what one wake-up (the check plus the poll) costs this thread
    in CPU time, so an expensive check is polled at most about 2.5% of the time, never less
    often than the schedule's cap (the user's ``sleep``). The check always runs at least
    once, even with an already expired budget.
    """
    poller = select.poll()
    by_fd: dict[int, EventSource] = {}
    hint_fds: set[int] = set()
    for source in (*sources, *hints):
        by_fd[source.fileno()] = source
        poller.register(source.fileno(), select.POLLIN)
    hint_fds.update(hint.fileno() for hint in hints)
    attempt = 0
    wake_cost = math.inf  # CPU seconds of the cheapest wake-up so far
    cycle_began = cost_clock()
    cap = schedule.cap
    while True:
        # Deadline first, then the check: readiness seen past the deadline is a timeout.
        # The first check always runs, even with an already expired budget.
        if attempt > 0 and budget.expired(clock()):
            return TimedOut(attempt)
        if check():
            return Ready(attempt + 1)
        now = clock()
        if adaptive and attempt > 0:
            # The cheapest wake-up so far is what the check itself costs. Dearer ones paid
            # for one-time work (imports, name resolution), a cold CPU after a long sleep
            # or a busy machine; following them would only make detection slower.
            wake_cost = min(wake_cost, cost_clock() - cycle_began)
            cap = adaptive_cap(wake_cost, schedule.cap)
        if budget.expired(now):
            return TimedOut(attempt + 1)
        delay = min(schedule.wait(attempt, budget.remaining(now)), cap)
        attempt += 1
        cycle_began = cost_clock()
        events = poller.poll(_milliseconds(delay))
        # Draining output is the child's cost, not polling's: keep it out of wake_cost.
        drain_began = cost_clock()
        for fd, _ in events:
            found = by_fd.get(fd)
            if fd in hint_fds:
                attempt = 0
            if found is not None and not found.on_readable():
                poller.unregister(fd)
                del by_fd[fd]
        cycle_began += cost_clock() - drain_began


def wait_past_deadline(
    check: Callable[[], bool],
    budget: Callable[[], Budget | None],
    schedule: PollSchedule,
    sources: Callable[[], Iterable[EventSource]],
    *,
    hints: Iterable[EventSource],
    adaptive: bool,
    on_timeout: Callable[[], None],
    step: float,
) -> None:
    """:func:`wait_until`, asking ``on_timeout`` (which raises to give up) at each timeout.

    ``budget`` is read again after each timeout, since ``on_timeout`` may extend it; told
    to go on past the deadline, the wait continues one ``step`` at a time, never a spin.
    """
    overtime: Budget | None = None
    while True:
        current = overtime or budget() or Budget.unbounded()
        outcome = wait_until(
            check, current, schedule, sources=sources(), hints=hints, adaptive=adaptive
        )
        if not isinstance(outcome, TimedOut):
            return
        on_timeout()
        now = monotonic()
        deadline = budget()
        expired = deadline is not None and deadline.expired(now)
        overtime = Budget.starting_at(now, step) if expired else None


def _milliseconds(seconds: float) -> int:
    if math.isinf(seconds):
        return -1
    # Round up: poll() takes whole milliseconds, and waking early only costs a re-check.
    return max(0, math.ceil(seconds * 1000))
