"""Subclasses written for the published package: their blocking checks run off the loop."""

from __future__ import annotations

import subprocess
import time

import anyio
import pytest

from mirakuru import Executor, State, TCPExecutor, probes
from tests.aio.programs import banner_after, listens_after, state
from tests.aio.stall import StallMeter
from tests.helpers import free_port

pytestmark = pytest.mark.anyio

#: How long each blocking check takes: a loop that ran one would stall at least this long.
BLOCKS = 0.3


class StatusCommand(TCPExecutor):
    """Like pytest-postgresql's executor: readiness asked of a command (``pg_ctl status``),
    a blocking call in ``after_start_check``."""

    checks = 0

    def pre_start_check(self) -> bool:
        time.sleep(BLOCKS)
        return False

    def after_start_check(self) -> bool:
        type(self).checks += 1
        subprocess.run(["sleep", str(BLOCKS)], check=True)
        return super().after_start_check()


class TestBlockingChecks:
    """A subclass's own checks run in a worker thread: the loop keeps turning."""

    async def test_loop_keeps_turning(self) -> None:
        """While blocking checks run, no loop iteration waits anywhere near that long."""
        port = free_port()
        executor = StatusCommand(listens_after(0.2, port), host="127.0.0.1", port=port, timeout=30)
        async with StallMeter() as meter:
            await executor.astart()
        assert state(executor) is State.RUNNING
        assert StatusCommand.checks >= 1
        assert meter.worst < BLOCKS * 0.8, f"the loop stalled {meter.worst:.3f} s"
        await executor.astop()

    async def test_overridden_after_start_check_decides(self) -> None:
        """The subclass's rule, not a probe, says when it is ready."""

        class Counted(Executor):
            calls = 0

            def pre_start_check(self) -> bool:
                return False

            def after_start_check(self) -> bool:
                Counted.calls += 1
                return Counted.calls >= 3

        executor = Counted(banner_after(60), timeout=30)
        async with executor:
            assert Counted.calls == 3
            assert state(executor) is State.RUNNING


async def test_sibling_tasks_run_during_a_start() -> None:
    """Another task keeps running while astart() waits for a slow service."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    executor = Executor(banner_after(0.3), ready=probes.banner("ready"), timeout=30)
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await executor.astart()
        group.cancel_scope.cancel()
    assert ticks >= 10
    await executor.astop()
