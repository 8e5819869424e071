"""The waiter: one loop that wakes on events (exit, output, a stop) or on the poll schedule.

Executors wait on their :class:`~mirakuru.adapter.run.run.Run` (through its
:class:`~mirakuru.adapter.run.run.RunWakeups`), whose descriptors the reactor serves;
standalone waits (``probes.wait_for``) poll their own sources.
"""

from __future__ import annotations

import math
import select
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from mirakuru.adapter.clock import monotonic, wait_slice
from mirakuru.adapter.run.sources import EventSource
from mirakuru.core.budget import Budget
from mirakuru.core.outcome import Ready, TimedOut
from mirakuru.core.schedule import PollSchedule, adaptive_cap

__all__ = [
    "PollWakeups",
    "Wakeups",
    "idle_wakeups",
    "wait_past_deadline",
    "wait_until",
]


class Wakeups(Protocol):
    """What a waiter blocks on between checks."""

    #: CPU seconds the last :meth:`wait` spent serving sources (not polling's cost).
    served: float

    def wait(self, timeout: float) -> bool:
        """Block until an event or ``timeout`` seconds; True if a hint fired."""
        ...


class PollWakeups:
    """Wakes on readable sources through ``poll()``, serving them on the waiting thread."""

    def __init__(
        self,
        sources: Iterable[EventSource],
        hints: Iterable[EventSource],
        cost_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        hints = tuple(hints)
        self._poller = select.poll()
        self._by_fd: dict[int, EventSource] = {}
        self._hint_fds = {hint.fileno() for hint in hints}
        for source in (*sources, *hints):
            self._by_fd[source.fileno()] = source
            self._poller.register(source.fileno(), select.POLLIN)
        self._cost_clock = cost_clock
        self.served = 0.0

    def wait(self, timeout: float) -> bool:
        events = self._poller.poll(_milliseconds(wait_slice(timeout)))
        began = self._cost_clock()
        hinted = False
        for fd, _ in events:
            found = self._by_fd.get(fd)
            hinted = hinted or fd in self._hint_fds
            if found is not None and not found.on_readable():
                self._poller.unregister(fd)
                del self._by_fd[fd]
        self.served = self._cost_clock() - began
        return hinted


def idle_wakeups() -> Wakeups:
    """Wake-ups from the clock alone (nothing to watch: no process, or a stand-in)."""
    return PollWakeups((), ())


def wait_until(
    check: Callable[[], bool],
    budget: Budget,
    schedule: PollSchedule,
    *,
    sources: Iterable[EventSource] = (),
    hints: Iterable[EventSource] = (),
    wakeups: Wakeups | None = None,
    adaptive: bool = True,
    clock: Callable[[], float] = monotonic,
    cost_clock: Callable[[], float] = time.thread_time,
) -> Ready | TimedOut:
    """Call ``check`` until it returns True or ``budget`` runs out.

    ``check`` runs at once, then again whenever ``wakeups`` reports an event (by default:
    one of ``sources`` or ``hints`` became readable and was served) or the schedule's next
    delay passes, whichever is first, unless the deadline has passed by then. An event from
    a hint (say, a file appearing in a watched directory) also restarts the schedule at its
    first, shortest delay, since readiness is probably moments away. With ``adaptive``,
    the schedule's cap follows what one wake-up (the check plus the wait) costs this thread
    in CPU time (:func:`~mirakuru.core.schedule.adaptive_cap`: about 2.5% of a core with the
    default ``sleep``, more for a shorter one), never polling less often than the schedule's
    cap (the user's ``sleep``). The check always runs at least once, even with an already
    expired budget.
    """
    if wakeups is None:
        wakeups = PollWakeups(sources, hints, cost_clock)
    attempt = 0
    wake_cost = math.inf  # CPU seconds of the cheapest wake-up so far
    cycle_began = 0.0
    cap = schedule.cap
    while True:
        # Deadline first, then the check: readiness seen past the deadline is a timeout.
        # The first check always runs, even with an already expired budget.
        if attempt > 0 and budget.expired(clock()):
            return TimedOut(attempt)
        if check():
            return Ready(attempt + 1)
        now = clock()
        if adaptive:
            spent = cost_clock()  # one read per turn: it is a system call
            if attempt > 0:
                # The cheapest wake-up so far is what the check itself costs. Dearer ones
                # paid for one-time work (imports, name resolution), a cold CPU after a
                # long sleep or a busy machine; following them would only slow detection.
                wake_cost = min(wake_cost, spent - cycle_began)
                cap = adaptive_cap(wake_cost, schedule.cap)
            cycle_began = spent
        if budget.expired(now):
            return TimedOut(attempt + 1)
        delay = min(schedule.wait(attempt, budget.remaining(now)), cap)
        attempt += 1
        if wakeups.wait(delay):
            attempt = 0
        # Serving output is the child's cost, not polling's: keep it out of wake_cost.
        cycle_began += wakeups.served


def wait_past_deadline(
    check: Callable[[], bool],
    budget: Callable[[], Budget | None],
    schedule: PollSchedule,
    wakeups: Callable[[], Wakeups],
    *,
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
        outcome = wait_until(check, current, schedule, wakeups=wakeups(), adaptive=adaptive)
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
