"""``simulate_start()``: what an executor's ``start()`` would do, on a virtual clock."""

from __future__ import annotations

import subprocess

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.readiness.inotify import watches_available
from mirakuru.adapter.run.reactor import EXIT_POLL_INTERVAL
from mirakuru.base import SimpleExecutor
from mirakuru.core.lifecycle import Trigger, allowed_triggers
from mirakuru.core.simulation import (
    EXIT_WAKE,
    OUTPUT_WAKE,
    WATCH_WAKE,
    Script,
    SimulatedStart,
    Wakes,
    simulate,
)
from mirakuru.executor import Executor
from mirakuru.testing._clock import FakeClock

__all__ = ["simulate_start"]


def simulate_start(
    executor: SimpleExecutor,
    *,
    ready_after: float | None,
    exits_after: float | None = None,
    exit_code: int = 0,
    leaves_running: bool = False,
    check_duration: float = 0.0,
    check_cpu: float | None = None,
    clock: FakeClock | None = None,
) -> SimulatedStart:
    """What ``executor.start()`` would do if its process became ready ``ready_after``
    seconds after the start (``None``: never) and exited at ``exits_after`` with
    ``exit_code``: without spawning anything or sleeping.

    The executor's own start-up decisions are played out, the very ones its ``start()``
    makes: its budget (``timeout``), its poll schedule (``sleep``, adaptive or not),
    whether its probe is event-driven (a banner, sd_notify), woken by a directory watch
    (a pid file, a unix socket) or polled (TCP, HTTP), and what an exit does on the way
    up. The executor itself is only read, never started or changed.

    :param leaves_running: the exit (with status 0) leaves the service running, as a
        launcher that daemonizes does: the start goes on waiting for readiness. By default
        the scripted process is the whole service, and an exit with status 0 before it
        was ready fails the start at once, as a real start does once nothing is left.
    :param check_duration: seconds each readiness check takes; 0 models a quick one
        such as a TCP connect.
    :param check_cpu: CPU seconds each check costs the waiting thread (default: its
        duration). The default schedule follows it, spacing dearer checks further apart
        so that checking takes at most 2.5 % of a core.
    :param clock: a :class:`FakeClock` to run on: the history is stamped with its
        readings, and it is moved on to the moment ``start()`` would have returned.
    :raises NeverReturns: with no timeout, when the script would leave ``start()``
        waiting forever.
    """
    if not isinstance(executor, SimpleExecutor):
        raise TypeError(f"simulate_start() needs an executor, got {executor!r}")
    script = Script(ready_after, exits_after, exit_code, leaves_running=leaves_running)
    state = executor.state
    if Trigger.START not in allowed_triggers(state):
        raise ValueError(
            f"{executor} is {state.value}: simulate_start() plays out a start from idle, "
            "stopped or failed"
        )
    waits = isinstance(executor, Executor)
    unready = isinstance(executor, Executor) and executor._readiness_probe() is None
    if isinstance(executor, Executor) and unready and executor._stock_readiness():
        executor.after_start_check()  # the NotImplementedError start() raises, unspawned
    pidfd = capabilities().pidfd
    plan = executor._start_plan(exits_wake=pidfd)
    wakes = Wakes(watch=WATCH_WAKE if watches_available() else None, exit=_exit_wake(executor))
    began = clock() if clock is not None else 0.0
    result = simulate(
        plan,
        script,
        wakes=wakes,
        cost=check_duration if check_cpu is None else check_cpu,
        duration=check_duration,
        waits=waits,
        start=began,
        initial=state,
    )
    if clock is not None:
        clock.advance_to(began + result.returned_at)
    return result


def _exit_wake(executor: SimpleExecutor) -> float:
    """How soon the process's exit wakes a waiting start (see the reactor)."""
    if capabilities().pidfd:
        return EXIT_WAKE
    if subprocess.PIPE in (executor._stdout, executor._stderr):
        return OUTPUT_WAKE  # its captured output ends
    return EXIT_POLL_INTERVAL
