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
from mirakuru.core.engine import CHECK, Decision, Finish, Wait, WaitEngine, overtime_budget
from mirakuru.core.outcome import Ready, TimedOut
from mirakuru.core.schedule import PollSchedule

__all__ = [
    "PollWakeups",
    "Wakeups",
    "drive",
    "idle_wakeups",
    "wait_past_deadline",
    "wait_until",
]


class Wakeups(Protocol):
    """What a waiter blocks on between checks."""

    #: CPU seconds the last :meth:`wait` spent serving sources (not polling's cost).
    served: float
    #: Whether the last :meth:`wait` ended by an event (False: its time ran out).
    woken: bool

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
        self.woken = False

    def wait(self, timeout: float) -> bool:
        events = self._poller.poll(_milliseconds(wait_slice(timeout)))
        self.woken = bool(events)
        if not events:
            self.served = 0.0
            return False
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
    floor: Callable[[], float] | None = None,
    unready: Callable[[], bool] | None = None,
    clock: Callable[[], float] = monotonic,
    cost_clock: Callable[[], float] = time.thread_time,
) -> Ready | TimedOut:
    """Call ``check`` until it returns True or ``budget`` runs out: the blocking driver of
    the :class:`~mirakuru.core.engine.WaitEngine`, which makes every decision.

    ``check`` runs at once, then again whenever ``wakeups`` reports an event (by default:
    one of ``sources`` or ``hints`` became readable and was served) or the schedule's next
    delay passes, whichever is first, unless the deadline has passed by then. An event from
    a hint (say, a file appearing in a watched directory) also restarts the schedule at its
    first, shortest delay, since readiness is probably moments away. With ``adaptive``,
    the schedule's cap follows what one wake-up (the check plus the wait) costs this thread
    in CPU time (:func:`~mirakuru.core.schedule.adaptive_cap`). ``floor()``, asked after
    each failed check, is the least pause before the next timed check (events still wake
    the wait at once). ``unready()``, a cheap sure "not ready yet" (see :func:`drive`),
    stands in for ``check`` on wake-ups that no event caused. The check always runs at
    least once, even with an expired budget.
    """
    if wakeups is None:
        wakeups = PollWakeups(sources, hints, cost_clock)
    engine = WaitEngine(budget, schedule, adaptive=adaptive)
    return drive(engine, check, wakeups, clock, cost_clock, floor, unready)


def drive(
    engine: WaitEngine,
    check: Callable[[], bool],
    wakeups: Wakeups,
    clock: Callable[[], float] = monotonic,
    cost_clock: Callable[[], float] = time.thread_time,
    floor: Callable[[], float] | None = None,
    unready: Callable[[], bool] | None = None,
) -> Ready | TimedOut:
    """Run ``engine`` to its outcome: checks on this thread, waits blocked in ``wakeups``.

    After a wait that its time ended (no event), ``unready()`` is asked first: True, a sure
    "not ready yet" (nobody listens on the port, the banner is not seen), counts as the
    failed check without running it. Events (output, an exit, a hint, a stop) and the
    first check always get the real one.
    """
    # Nearly every round of a polled wait is a timed wake-up that the cheap answer ends:
    # one wait, one clock read, one question, one engine call. What a round costs (mostly
    # a cold CPU after the pause) is what waiting costs, so nothing else runs in it.
    adaptive = engine.adaptive
    decision: Decision = engine.begin()
    timed = False
    while True:
        if decision is CHECK:
            if timed and unready is not None and unready():
                decision = engine.refused(clock(), cost_clock() if adaptive else 0.0)
                continue
            passed = check()
            decision = engine.checked(
                passed,
                clock(),
                cost_clock() if adaptive else 0.0,
                floor=floor() if floor is not None and not passed else 0.0,
            )
        elif isinstance(decision, Wait):
            hinted = wakeups.wait(decision.delay)
            timed = not wakeups.woken
            decision = (
                engine.woke(clock(), hinted=hinted, served=wakeups.served)
                if wakeups.woken
                else engine.woke(clock())
            )
        else:
            assert isinstance(decision, Finish)
            return decision.outcome


def wait_past_deadline(
    check: Callable[[], bool],
    budget: Callable[[], Budget | None],
    schedule: PollSchedule,
    wakeups: Callable[[], Wakeups],
    *,
    adaptive: bool,
    on_timeout: Callable[[], None],
    step: float,
    floor: Callable[[], float] | None = None,
    unready: Callable[[], bool] | None = None,
) -> None:
    """:func:`wait_until`, asking ``on_timeout`` (which raises to give up) at each timeout.

    ``budget`` is read again after each timeout, since ``on_timeout`` may extend it; told
    to go on past the deadline, the wait continues one ``step`` at a time, never a spin.
    """
    engine = WaitEngine(budget() or Budget.unbounded(), schedule, adaptive=adaptive)
    while True:
        outcome = drive(engine, check, wakeups(), floor=floor, unready=unready)
        if not isinstance(outcome, TimedOut):
            return
        on_timeout()
        engine.resume(overtime_budget(budget(), monotonic(), step))


def _milliseconds(seconds: float) -> int:
    if math.isinf(seconds):
        return -1
    # Round up: poll() takes whole milliseconds, and waking early only costs a re-check.
    return max(0, math.ceil(seconds * 1000))
