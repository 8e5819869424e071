"""Scenarios of the awaitable API (``astart()``): ours only, published has none.

Each runs its event loop with ``anyio.run`` on asyncio. A loop stall is how late a task
that asks to wake every millisecond actually wakes: the worst of those, while executors
start, is the longest any other task of the program would have been kept waiting.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.catalog import PUBLISHED
from benchmarks.worker.readiness import build
from benchmarks.worker.support import TRIVIAL, TRIVIAL_BANNER, ApiMissing, Context

#: A stall meter's period: it asks the loop to wake it every millisecond.
TICK = 0.001


def _available(ctx: Context) -> bool:
    if hasattr(ctx.mirakuru.SimpleExecutor, "astart"):
        return True
    if ctx.impl == PUBLISHED:
        ctx.status = "n/a"
        ctx.note("published mirakuru has no async API")
        return False
    raise ApiMissing("SimpleExecutor.astart is missing")


async def _gather(calls: list[Callable[[], Any]]) -> None:
    import anyio

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(call)


async def _worst_stall(body: Callable[[], Any]) -> float:
    """Run ``body()`` while measuring the loop; the worst lateness, in seconds."""
    import anyio

    worst = 0.0

    async def meter() -> None:
        nonlocal worst
        while True:
            due = time.perf_counter() + TICK
            await anyio.sleep(TICK)
            worst = max(worst, time.perf_counter() - due)

    async with anyio.create_task_group() as group:
        group.start_soon(meter)
        await anyio.sleep(TICK)
        await body()
        group.cancel_scope.cancel()
    return worst


async def _warm_up(ctx: Context) -> None:
    """One awaited start/stop: lazy imports and the worker threads are made here."""
    executor = ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER)
    await executor.astart()
    await executor.astop()


def _services(ctx: Context, count: int, delay: float, kinds: tuple[str, ...]) -> list[Any]:
    executors = []
    for number in range(count):
        tmp = ctx.scratch("svc")
        kind = kinds[number % len(kinds)]
        executors.append(build(ctx, kind, delay, tmp / "ready", tmp))
    return executors


def ten_at_once(ctx: Context) -> None:
    """Seconds until ten services that each need 1 s are all ready, started together."""
    if not _available(ctx):
        return
    import anyio

    async def main() -> None:
        await _warm_up(ctx)
        for _ in range(ctx.pick(3, 1)):
            executors = _services(ctx, 10, 1.0, ("output",))
            began = time.perf_counter()
            try:
                await _gather([executor.astart for executor in executors])
                ctx.record("ready_s", time.perf_counter() - began)
            finally:
                await _gather([executor.astop for executor in executors])
            # The same with the blocking start_all() (a thread per executor), for scale.
            executors = _services(ctx, 10, 1.0, ("output",))
            began = time.perf_counter()
            with ctx.mirakuru.start_all(*executors):
                ctx.record("blocking_ready_s", time.perf_counter() - began)

    anyio.run(main)


#: Light services for the stall: Python children starting by the dozen would fill both
#: cores of the test machine, and the loop would wait for a CPU, not for us.
LIGHT_BANNER = ["sh", "-c", "sleep 0.5; echo ready; exec sleep 100"]


class _LateListener:
    """A port of this process that listens (and accepts) from ``delay`` seconds on."""

    def __init__(self, delay: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._timer = threading.Timer(delay, self._serve)
        self._timer.daemon = True
        self._timer.start()

    def _serve(self) -> None:
        self.sock.listen(64)
        with contextlib.suppress(OSError):
            while True:
                self.sock.accept()[0].close()

    def close(self) -> None:
        self._timer.cancel()
        self.sock.close()


def _light_services(ctx: Context, count: int) -> tuple[list[Any], list[_LateListener]]:
    """Half banner services (``sh``), half TCP probes of ports this process opens late."""
    mk = ctx.mirakuru
    executors: list[Any] = []
    listeners: list[_LateListener] = []
    for number in range(count):
        if number % 2:
            listener = _LateListener(0.5)
            listeners.append(listener)
            ready = mk.probes.tcp("127.0.0.1", listener.port)
            executors.append(mk.Executor(["sleep", "100"], ready=ready, timeout=30))
        else:
            ready = mk.probes.banner("^ready$")
            executors.append(mk.Executor(LIGHT_BANNER, ready=ready, timeout=30))
    return executors, listeners


def loop_stall(ctx: Context) -> None:
    """The worst event-loop stall while twenty executors (half banners, half TCP ports)
    start at once, beside the same loop's worst stall with nothing to do."""
    if not _available(ctx):
        return
    import anyio

    async def main() -> None:
        await _warm_up(ctx)
        for _ in range(ctx.pick(5, 2)):
            executors, listeners = _light_services(ctx, 20)
            try:
                stall = await _worst_stall(partial(_gather, [e.astart for e in executors]))
                ctx.record("stall_ms", 1000.0 * stall)
            finally:
                await _gather([executor.astop for executor in executors])
                for listener in listeners:
                    listener.close()
            idle = await _worst_stall(lambda: anyio.sleep(0.6))
            ctx.record("idle_stall_ms", 1000.0 * idle)

    anyio.run(main)


def waiting_cpu(ctx: Context, kind: str) -> None:
    """CPU of this process, as % of one core, while an awaited start() waits, beside the
    same for a blocking start() of the same service."""
    if not _available(ctx):
        return
    import anyio

    delay = ctx.pick_float(2.0, 0.5)

    def record(which: str, cpu: float, wall: float) -> None:
        ctx.record(f"cpu_{which}_pct", 100.0 * cpu / wall)
        ctx.record(f"cpu_{which}_ms", 1000.0 * cpu)

    async def awaited() -> None:
        await _warm_up(ctx)
        tmp: Path = ctx.scratch(kind)
        executor = build(ctx, kind, delay, tmp / "ready", tmp)
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await executor.astart()  # measured inside the running loop: no loop set-up
            cpu1, wall1 = time.process_time(), time.perf_counter()
        finally:
            await executor.astop()
        record("async", cpu1 - cpu0, wall1 - wall0)

    anyio.run(awaited)
    warm_up = ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER)
    warm_up.start()
    warm_up.stop()
    tmp = ctx.scratch(kind)
    executor = build(ctx, kind, delay, tmp / "ready", tmp)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        executor.start()
        cpu1, wall1 = time.process_time(), time.perf_counter()
    finally:
        executor.stop()
    record("blocking", cpu1 - cpu0, wall1 - wall0)
