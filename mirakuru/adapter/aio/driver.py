"""The async driver of the wait engine, and the hand-off of blocking steps to threads.

The engine (:mod:`mirakuru.core.engine`) decides; this driver awaits. A check first asks
the loop-side verdict (microseconds, never blocking); only when that is not a sure "no"
does the full check run in a worker thread. Between checks the task awaits the run's
wake-ups (:mod:`mirakuru.adapter.aio.wake`) or the engine's next instant.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from mirakuru.adapter.aio.wake import AsyncWakeups
from mirakuru.adapter.clock import monotonic
from mirakuru.core.engine import CHECK, Decision, Finish, Wait, WaitEngine
from mirakuru.core.outcome import Ready, TimedOut

__all__ = ["Abandoned", "Handoff", "drive", "in_thread", "shielded"]

LOG = logging.getLogger("mirakuru.base")

T = TypeVar("T")

# anyio 4.1 renamed ``cancellable`` to ``abandon_on_cancel``; 4.0 knows only the former.
_ABANDON = (
    "abandon_on_cancel"
    if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters
    else "cancellable"
)

#: How long a cancelled task waits for a worker thread that is spawning to finish (and
#: then to kill what it spawned) before it lets the cancellation go on regardless.
SPAWN_WAIT = 30.0


#: Spawns at once per event loop. Each spawn is a few milliseconds of Python (Popen, the
#: cgroup, the run's set-up) holding the GIL; twenty at once would keep the loop's thread
#: waiting for the GIL behind them, a few at a time keep it turning.
SPAWN_CONCURRENCY = 2
_SPAWNS: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("mirakuru_spawns")


def spawn_limiter() -> anyio.CapacityLimiter:
    """This event loop's limit on concurrent spawns."""
    try:
        return _SPAWNS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(SPAWN_CONCURRENCY)
        _SPAWNS.set(limiter)
        return limiter


async def in_thread(
    function: Callable[..., T], *args: Any, limiter: anyio.CapacityLimiter | None = None
) -> T:
    """``function(*args)`` in a worker thread; a cancellation leaves it running there."""
    options: dict[str, Any] = {_ABANDON: True, "limiter": limiter}
    return await anyio.to_thread.run_sync(function, *args, **options)


async def shielded(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread, finished even if the task is cancelled."""
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(function, *args)
    return result


def _timed(check: Callable[[], bool]) -> tuple[bool, float]:
    began = time.thread_time()
    passed = check()
    return passed, time.thread_time() - began


async def drive(
    engine: WaitEngine,
    check: Callable[[], bool],
    wakeups: AsyncWakeups,
    *,
    unready: Callable[[], bool] | None = None,
    floor: Callable[[], float] | None = None,
    clock: Callable[[], float] = monotonic,
) -> Ready | TimedOut:
    """Run ``engine`` to its outcome: ``unready`` (a sure "no") on the loop, ``check`` in a
    worker thread when it is not, the waits awaited on ``wakeups``.

    The CPU reported to the engine is what the checks themselves cost, wherever they ran;
    ``floor()`` is asked after each failed check, as in the blocking driver.
    """
    adaptive = engine.adaptive
    cpu = 0.0
    decision: Decision = engine.begin()
    while True:
        if decision is CHECK:
            began = time.thread_time() if adaptive else 0.0
            if unready is not None and unready():
                passed = False
                if adaptive:
                    cpu += time.thread_time() - began
            else:
                passed, spent = await in_thread(_timed, check)
                cpu += spent
            least = floor() if floor is not None and not passed else 0.0
            decision = engine.checked(passed, clock(), cpu, floor=least)
        elif isinstance(decision, Wait):
            hinted = await wakeups.wait(decision.delay)
            decision = engine.woke(clock(), hinted=hinted)
        else:
            assert isinstance(decision, Finish)
            return decision.outcome


class Abandoned(Exception):
    """The task that handed the work over has left: do not begin what it would not end."""


class Handoff(Generic[T]):
    """Blocking work in a worker thread that the awaiting task may abandon (cancelled):
    whoever of the two comes last cleans up what the work left.

    The work calls :meth:`commit` right before its point of no return (a spawn): abandoned
    before that, it raises :class:`Abandoned` and leaves nothing; abandoned after it, the
    task waits (shielded) for the work to end, and the work's ``cleanup`` runs on its
    result, in the thread if the work was still going, else in the task.
    """

    def __init__(
        self,
        cleanup: Callable[[T], None],
        interrupt: Callable[[], None] | None = None,
        patience: float = SPAWN_WAIT,
        *,
        spawn_only: bool = True,
    ) -> None:
        self._cleanup = cleanup
        #: Only a spawn waits its turn under :func:`spawn_limiter`; a whole start does not.
        self._spawn_only = spawn_only
        self._interrupt = interrupt
        self._patience = patience
        self._lock = threading.Lock()
        self._abandoned = False
        self._committed = False
        self._result: tuple[T] | None = None
        self._finished = threading.Event()

    def commit(self) -> None:
        """In the work: past this point it leaves something behind (raises if abandoned)."""
        with self._lock:
            if self._abandoned:
                raise Abandoned
            self._committed = True

    def _work(self, work: Callable[[Handoff[T]], T]) -> T:
        try:
            result = work(self)
            with self._lock:
                self._result = (result,)
                abandoned = self._abandoned
            if abandoned:
                self._quietly(self._cleanup, result)
            return result
        finally:
            self._finished.set()

    def _wait_finished(self) -> None:
        if self._interrupt is None:
            finished = self._finished.wait(self._patience)
        else:
            # The work is someone's start(): cut its wait short until it gives up.
            deadline = monotonic() + self._patience
            while not (finished := self._finished.wait(0.05)) and monotonic() < deadline:
                self._quietly(self._interrupt)
        if not finished:
            LOG.warning("a cancelled start still runs after %s s; it cleans up", self._patience)

    async def run(self, work: Callable[[Handoff[T]], T]) -> T:
        """``work(self)`` in a worker thread; on cancellation, clean up before propagating."""
        try:
            limiter = spawn_limiter() if self._spawn_only else None
            return await in_thread(self._work, work, limiter=limiter)
        except BaseException:
            with self._lock:
                self._abandoned = True
                committed, box = self._committed, self._result
            if box is not None:
                await shielded(self._quietly, self._cleanup, box[0])
            elif committed:
                await shielded(self._wait_finished)
            raise

    @staticmethod
    def _quietly(function: Callable[..., object], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            LOG.exception("cleaning up after a cancelled start")
