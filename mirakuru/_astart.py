"""How an awaited start runs: the same steps as ``start()``, none of them on the loop.

Three ways, chosen by what the executor's class overrides:

- an :class:`~mirakuru.base.Executor` with the stock ``start()`` and ``wait_for()``: the
  spawn (and ``pre_start_check()``) in a worker thread, then the wait engine driven on the
  loop, awakened by the reactor; each check a loop-side sure "no", else the full check
  (``check_subprocess()``, ``after_start_check()``, a subclass's own) in a worker thread;
- a :class:`~mirakuru.base.SimpleExecutor` with the stock ``start()``: the spawn in a
  worker thread, nothing to wait for;
- a class that overrides ``start()`` or ``wait_for()`` (its own steps around ours, as
  published plugins do): its ``start()`` whole, in a worker thread.

Whichever way, a cancellation kills what was started before it goes on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.lowlevel

from mirakuru.adapter.aio.driver import Handoff, drive, in_thread, shielded
from mirakuru.adapter.aio.wake import AsyncRunWakeups, AsyncWakeups, IdleWakeups
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.readiness.verdict import surely_unready
from mirakuru.adapter.readiness.wiring import directory_hints
from mirakuru.adapter.run.run import Run
from mirakuru.adapter.teardown.stopping import START_OWNER
from mirakuru.base import SimpleExecutor
from mirakuru.core.budget import Budget
from mirakuru.core.engine import WaitEngine, overtime_budget
from mirakuru.core.outcome import Ready
from mirakuru.core.schedule import PollSchedule
from mirakuru.exceptions import AlreadyRunning
from mirakuru.executor import Executor

if TYPE_CHECKING:
    from mirakuru.adapter.readiness.verdict import Gate

__all__ = ["astart", "finish_anyway"]

T = TypeVar("T")


async def finish_anyway(function: Callable[[], T]) -> T:
    """``function()`` in a worker thread, finished even if the task is cancelled; the
    cancellation is raised once it is done."""
    result = await shielded(function)
    await anyio.lowlevel.checkpoint_if_cancelled()
    return result


async def astart(executor: SimpleExecutor) -> None:
    """Start ``executor`` as its ``start()`` would, awaiting instead of blocking."""
    cls = type(executor)
    if isinstance(executor, Executor):
        if cls.start is Executor.start and cls.wait_for is SimpleExecutor.wait_for:
            await _start_and_wait(executor)
            return
    elif cls.start is SimpleExecutor.start:
        await Handoff(_kill_spawned(executor)).run(_spawn_only(executor))
        return
    await _start_in_thread(executor)


# -- a SimpleExecutor: the spawn in a thread -------------------------------------------------


def _spawn_only(executor: SimpleExecutor) -> Callable[[Handoff[bool]], bool]:
    def work(handoff: Handoff[bool]) -> bool:
        with executor._lock:
            spawned = executor.process is None
            if spawned:
                handoff.commit()
                executor._spawn()
                executor._set_timeout()
            executor._became_ready()
        return spawned

    return work


def _kill_spawned(executor: SimpleExecutor) -> Callable[[bool], None]:
    def cleanup(spawned: bool) -> None:
        if spawned:
            executor.kill()

    return cleanup


# -- a class with its own start(): the whole start() in a thread -----------------------------


async def _start_in_thread(executor: SimpleExecutor) -> None:
    # Not this task's start: the thread running start() is the starter, so the kill()
    # of a cancellation, from another thread, cuts its wait short (as stop() would).
    owner = START_OWNER.set(None)
    try:

        def work(handoff: Handoff[bool]) -> bool:
            handoff.commit()
            executor.start()
            return True

        def interrupt() -> None:
            executor.kill()

        handoff = Handoff(
            _kill_spawned(executor),
            interrupt=interrupt,
            patience=_grace(executor),
            spawn_only=False,
        )
        await handoff.run(work)
    finally:
        START_OWNER.reset(owner)


def _grace(executor: SimpleExecutor) -> float:
    grace = executor._timeouts.grace
    return 30.0 if grace is None else max(grace, 1.0)


# -- an Executor: spawn in a thread, await readiness on the loop ------------------------------


class _Plan:
    """What the wait of one awaited start needs, prepared off the loop."""

    def __init__(
        self,
        run: Run | None,
        schedule: PollSchedule,
        adaptive: bool,
        check: Callable[[], bool],
        unready: Gate | None,
        stack: contextlib.ExitStack,
    ) -> None:
        self.run = run
        self.schedule = schedule
        self.adaptive = adaptive
        self.check = check
        self.unready = unready
        self._stack = stack
        self._lock = threading.Lock()
        #: Set once the start is decided (failed or cancelled): a late check must not
        #: declare the executor ready.
        self.over = False

    def wakeups(self) -> AsyncWakeups:
        """The wake-ups of the wait, made on the loop (a waker belongs to its loop)."""
        run = self.run
        wakeups = AsyncRunWakeups(run) if run is not None and run.real else IdleWakeups()
        with self._lock:
            self._stack.callback(wakeups.close)
        return wakeups

    def close(self) -> None:
        """Unwatch the hints and free the wake-ups (once, whichever thread asks first)."""
        with self._lock:
            stack, self._stack = self._stack, contextlib.ExitStack()
        stack.close()


async def _start_and_wait(executor: Executor) -> None:
    owner = START_OWNER.set(object())  # this task and its threads are one starter
    try:
        cancelled = anyio.get_cancelled_exc_class()
        handoff: Handoff[_Plan | None] = Handoff(lambda plan: _abandon(executor, plan))
        plan = await handoff.run(lambda handoff: _begin(executor, handoff))
        if plan is None:
            return
        try:
            await _await_ready(executor, plan)
        except BaseException as error:
            replacement = await shielded(_fail, executor, plan, error, cancelled)
            if replacement is not None:
                raise replacement from None
            raise
        finally:
            executor._gate.leave()
    finally:
        START_OWNER.reset(owner)


def _begin(executor: Executor, handoff: Handoff[_Plan | None]) -> _Plan | None:
    """Off the loop: what ``start()`` does before it waits; None if nothing to wait for."""
    with executor._lock:
        if executor._gate.other_thread_starting():
            executor._await_other_start()
            return None
        if executor.process is not None:
            executor._became_ready()
            return None
        if executor._readiness_probe() is None and (
            type(executor).after_start_check is Executor.after_start_check
        ):
            executor.after_start_check()  # raises NotImplementedError before spawning
        if executor.pre_start_check():
            raise AlreadyRunning(executor)
        handoff.commit()
        executor._spawn()
        executor._set_timeout()
        run = executor._run
        executor._gate.enter()
    try:
        return _prepare(executor, run)
    except BaseException as error:
        _fail(executor, None, error, None)
        executor._gate.leave()
        raise


def _prepare(executor: Executor, run: Run | None) -> _Plan:
    """What ``wait_for()`` sets up: the schedule, the hints, the reactor's wake-ups."""
    if executor._budget is None:
        executor._set_timeout()
    plan = executor._start_plan()
    stack = contextlib.ExitStack()
    unready = None
    if run is not None:
        stack.enter_context(run.serving(directory_hints(plan.watched) if run.real else []))
        probe = executor._readiness_probe()
        if executor._stock_checks() and probe is not None:
            unready = surely_unready(probe, run, executor._wiring.seen)
    check = executor._start_check(executor._surely_refused())
    return _Plan(run, plan.schedule, plan.adaptive, check, unready, stack)


async def _await_ready(executor: Executor, plan: _Plan) -> None:
    """On the loop: the engine's rounds until ready; a timeout asks ``check_timeout()``."""
    engine = WaitEngine(
        executor._budget or Budget.unbounded(), plan.schedule, adaptive=plan.adaptive
    )

    def check() -> bool:
        return plan.check() and _finish(executor, plan)

    wakeups = plan.wakeups()
    while True:
        outcome = await drive(
            engine, check, wakeups, unready=plan.unready, floor=executor._poll_floor
        )
        if isinstance(outcome, Ready):
            return
        await in_thread(_timed_out, executor)
        engine.resume(overtime_budget(executor._budget, monotonic(), executor._sleep))


def _timed_out(executor: Executor) -> None:
    # check_timeout may be overridden: 1.x style raises, 3.x style returns False.
    if not executor.check_timeout():
        executor._time_out()


def _finish(executor: Executor, plan: _Plan) -> bool:
    """In the thread whose check passed: what ``start()`` does once ``wait_for()`` returned."""
    plan.close()
    if plan.run is not None and plan.run.stopping:
        raise executor._stopped_error()
    with executor._lock:
        if not plan.over:
            executor._became_ready()
    return True


def _fail(
    executor: Executor,
    plan: _Plan | None,
    error: BaseException,
    cancelled: type[BaseException] | None,
) -> BaseException | None:
    """Off the loop: leave nothing running after a failed (or cancelled) start; what to
    raise instead of ``error``, if anything (a stop from elsewhere explains the failure)."""
    if plan is not None:
        plan.over = True
        plan.close()
    run = executor._run
    with executor._lock:
        if cancelled is not None and isinstance(error, cancelled):
            executor._failure = executor._failure or "astart() cancelled"
            executor._abort_start(error)
            return None
        stopped = isinstance(error, Exception) and run is not None and run.stopping
        replacement = executor._stopped_error() if stopped else None
        executor._abort_start(replacement or error)
    return replacement


def _abandon(executor: Executor, plan: _Plan | None) -> None:
    """The task left while its start was being set up: undo the spawn."""
    if plan is None:
        return
    with executor._lock:
        executor._failure = executor._failure or "astart() cancelled"
    _fail(executor, plan, _Cancelled(), None)
    executor._gate.leave()


class _Cancelled(Exception):
    """Stands for the cancellation that reached the task, not this thread."""
