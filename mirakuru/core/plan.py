"""What a start decides before it waits: the budget, the schedule, and what wakes the wait.

One pure function, :func:`plan_start`, makes these decisions from an executor's settings
and its readiness probe. The executors' ``start()`` and ``astart()`` act on its answer,
and :func:`mirakuru.testing.simulate_start` runs the same answer on a virtual clock, so
a change to any decision here changes all three alike.
"""

from __future__ import annotations

import attrs

from mirakuru.core.budget import Budget
from mirakuru.core.probes import PidFile, Probe, UnixSocket, leaves, only_event_driven
from mirakuru.core.schedule import MAX_AUTO_CAP, PollSchedule, event_schedule

__all__ = ["FAST_CHECKS", "StartPlan", "plan_start", "watched_paths"]

#: The timed checks of event-driven readiness where exits are not events: polled fast.
FAST_CHECKS = PollSchedule(cap=MAX_AUTO_CAP)


@attrs.frozen(slots=True)
class StartPlan:
    """How one start waits for readiness.

    ``probe`` is the readiness probe (None when the executor's class decides readiness
    by its own ``after_start_check()``, which ``stock`` False also says); ``event_driven``:
    only the child's output, notifications or exit can make it ready, so the timed checks
    are a safety net; ``exits_wake``: the process's exit wakes the wait the moment it
    happens (a pidfd); ``watched``: the pid files and unix sockets whose directories are
    watched, their appearance waking the wait and restarting the schedule.
    """

    timeout: float | None
    schedule: PollSchedule
    adaptive: bool
    probe: Probe | None
    stock: bool
    event_driven: bool
    exits_wake: bool
    watched: tuple[str, ...]

    def budget(self, now: float) -> Budget:
        """The one start-up deadline, armed at ``now``."""
        return Budget.starting_at(now, self.timeout)


def watched_paths(probe: Probe | None) -> tuple[str, ...]:
    """The paths of ``probe``'s pid files and unix sockets: each appears in a directory a
    watch can wake the wait on."""
    if probe is None:
        return ()
    return tuple(leaf.path for leaf in leaves(probe) if isinstance(leaf, PidFile | UnixSocket))


def plan_start(
    *,
    timeout: float | None,
    sleep: float,
    adaptive: bool,
    probe: Probe | None,
    stock: bool,
    exits_wake: bool,
) -> StartPlan:
    """The plan of a start: ``sleep`` is the longest pause between checks, ``adaptive``
    says it was left at its default; ``stock``: readiness is ``probe`` itself, with no
    class-specific check around it."""
    # Output and sd_notify readiness can only change when the child writes or exits, and
    # both wake the waiter at once: timed checks are a mere safety net then.
    event_driven = probe is not None and stock and only_event_driven(probe)
    if event_driven and exits_wake:
        # A shorter sleep would only add wake-ups that cannot see anything new (every
        # change is an event); a longer one is still the longest gap.
        gap = max(sleep, event_schedule().cap)
        schedule, adapts = PollSchedule(cap=gap, first=gap), False
    elif event_driven and adaptive:
        # Without a pidfd an exit is found by polling: keep polling fast.
        schedule, adapts = FAST_CHECKS, False
    else:
        # sleep (given or not) is the longest gap. A cheap polled check is asked more
        # often; an event-driven one whose exits are polled is not: only an exit can be
        # news between the events that wake the wait anyway, and a check every sleep finds
        # it as soon as published would (adapting polled a banner every 2.5 ms at
        # sleep=0.01, three times published's CPU).
        schedule, adapts = PollSchedule(cap=sleep), not event_driven
    return StartPlan(
        timeout=timeout,
        schedule=schedule,
        adaptive=adapts,
        probe=probe,
        stock=stock,
        event_driven=event_driven,
        exits_wake=exits_wake,
        watched=watched_paths(probe),
    )
