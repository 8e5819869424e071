"""Cancelling astart() or astop() at any point leaves no process behind.

Each test checks right when the cancellation reaches it, not after a settle: the tree must
be gone before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Self

import anyio
import pytest

from mirakuru import Executor, SimpleExecutor, State, TCPExecutor, probes
from tests.aio.programs import banner_after, ignores_term, listens_after, state
from tests.helpers import free_port, marked_processes, wait_until

pytestmark = pytest.mark.anyio

#: Cancellation points, in seconds after astart() began: before the spawn, during it,
#: right after it, and while waiting (the services are ready after 0.4 s).
DELAYS = [0.0, 0.0002, 0.001, 0.003, 0.006, 0.01, 0.02, 0.05, 0.1, 0.2]
#: States an executor may be left in: idle when cancelled before anything was spawned.
LEFT = {State.IDLE, State.FAILED, State.STOPPED}


def assert_nothing_left(executor: SimpleExecutor) -> None:
    """No process of ``executor`` alive right now, and a state that says so."""
    assert not marked_processes(executor), f"{executor!r} left processes behind"
    assert executor.process is None
    assert state(executor) in LEFT


class TestCancelAstart:
    """A cancelled astart() kills what it started before the cancellation goes on."""

    @pytest.mark.parametrize("delay", DELAYS)
    async def test_banner(self, delay: float) -> None:
        """Cancelled at ``delay``: the state is failed (or idle), no process alive."""
        executor = Executor(banner_after(0.4), ready=probes.banner("^ready$"), timeout=30)
        with anyio.move_on_after(delay) as scope:
            await executor.astart()
        assert scope.cancelled_caught
        assert_nothing_left(executor)
        if state(executor) is State.FAILED:
            assert "cancelled" in (executor.history[-1].detail or "")

    @pytest.mark.parametrize("delay", DELAYS[::3])
    async def test_tcp(self, delay: float) -> None:
        """The same for a polled probe, whose checks run in worker threads."""
        port = free_port()
        executor = TCPExecutor(listens_after(0.4, port), host="127.0.0.1", port=port, timeout=30)
        with anyio.move_on_after(delay) as scope:
            await executor.astart()
        assert scope.cancelled_caught
        assert_nothing_left(executor)

    @pytest.mark.parametrize("delay", DELAYS[::3])
    async def test_simple_executor(self, delay: float) -> None:
        """A cancelled SimpleExecutor.astart() leaves nothing either."""
        executor = SimpleExecutor(["sleep", "60"])
        with anyio.move_on_after(delay):
            await executor.astart()
        # The spawn may have finished before the cancellation came: then it runs.
        if executor.running():
            await executor.astop()
        assert_nothing_left(executor)

    async def test_native_timeout(self, anyio_backend: str) -> None:
        """asyncio.timeout() and trio.move_on_after() cancel it too."""
        executor = Executor(banner_after(60), ready=probes.banner("never"), timeout=30)
        if anyio_backend == "asyncio":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await executor.astart()
        else:
            import trio

            with trio.move_on_after(0.1) as scope:
                await executor.astart()
            assert scope.cancelled_caught
        assert_nothing_left(executor)
        assert state(executor) is State.FAILED

    async def test_failing_sibling(self) -> None:
        """A sibling task failing in the task group cancels the start; nothing is left."""
        executor = Executor(banner_after(60), ready=probes.banner("never"), timeout=30)

        async def fail_soon() -> None:
            await anyio.sleep(0.1)
            raise LookupError("a sibling failed")

        async def both() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(executor.astart)
                group.start_soon(fail_soon)

        with pytest.raises(ExceptionGroup) as caught:
            await both()
        assert caught.group_contains(LookupError)
        assert_nothing_left(executor)

    async def test_during_a_slow_pre_start_check(self) -> None:
        """Cancelled in pre_start_check(), astart() returns at once and never spawns."""
        checked = threading.Event()
        release = threading.Event()

        class Slow(Executor):
            def pre_start_check(self) -> bool:
                checked.set()
                release.wait(10)
                return False

        executor = Slow(banner_after(0), ready=probes.banner("ready"), timeout=30)
        began = time.monotonic()
        with anyio.move_on_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(executor.astart)
                await anyio.to_thread.run_sync(checked.wait, 10)
                group.cancel_scope.cancel()
        assert time.monotonic() - began < 5
        release.set()
        # The abandoned check ends now; the start it belonged to must not go on.
        assert not wait_until(lambda: bool(executor.history), 0.5)
        assert executor.process is None
        assert state(executor) is State.IDLE


class TestCancelOverriddenStart:
    """A class with its own start() runs it in a thread; cancelling still cleans up."""

    class Initdb(Executor):
        """Blocking work before the stock start(), as pytest-postgresql's start() does."""

        def start(self) -> Self:
            time.sleep(0.1)
            return super().start()

    @pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
    async def test_cancel(self, delay: float) -> None:
        """Cancelled before or after its spawn, nothing of it is left when astart() ends."""
        executor = self.Initdb(banner_after(60), ready=probes.banner("never"), timeout=30)
        with anyio.move_on_after(delay) as scope:
            await executor.astart()
        assert scope.cancelled_caught
        assert_nothing_left(executor)

    async def test_starts(self) -> None:
        """Not cancelled, it starts as its start() says."""
        executor = self.Initdb(banner_after(0), ready=probes.banner("ready"), timeout=30)
        async with executor:
            assert state(executor) is State.RUNNING


class TestCancelAstop:
    """A cancelled astop() still finishes the stop, then lets the cancellation go on."""

    @pytest.mark.parametrize("delay", [0.0, 0.01, 0.1])
    async def test_finishes(self, delay: float) -> None:
        """A service ignoring SIGTERM is killed after its grace, cancellation or not."""
        executor = Executor(ignores_term(), ready=probes.banner("ready"), stop_timeout=0.3)
        await executor.astart()
        began = time.monotonic()
        with anyio.move_on_after(delay) as scope:
            await executor.astop()
        assert scope.cancelled_caught
        assert time.monotonic() - began >= 0.25
        assert state(executor) is State.STOPPED
        assert_nothing_left(executor)

    async def test_akill_finishes(self) -> None:
        """A cancelled akill() finishes too."""
        executor = Executor(ignores_term(), ready=probes.banner("ready"), timeout=30)
        await executor.astart()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await executor.akill()
        assert_nothing_left(executor)
