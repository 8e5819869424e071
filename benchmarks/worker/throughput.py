"""Scenarios about overhead: start/stop rate, memory, spawn cost, import time."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.worker.support import TRIVIAL, TRIVIAL_BANNER, Context, clock

#: How long spawn-cold sits idle before each start: longer than the kernel keeps a cgroup
#: move's fast path (a few ms after the last move).
IDLE = 0.2


def _trivial(ctx: Context) -> Any:
    return ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER)


def cycles(ctx: Context, **options: float) -> None:
    count = ctx.pick(50, 10)
    # Steady state: the first start's one-time set-up is what the spawn row measures.
    first = ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER, **options)
    first.start()
    first.stop()
    begin = clock()
    for _ in range(count):
        executor = ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER, **options)
        executor.start()
        executor.stop()
    ctx.record("cycles_per_s", count / (clock() - begin))


def _maxrss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory(ctx: Context) -> None:
    count = ctx.pick(200, 20)
    # One start/stop first, kept too: imports and what a process sets up once (threads,
    # a watchdog) are not what 200 more executors cost.
    warm_up = _trivial(ctx)
    warm_up.start()
    warm_up.stop()
    before = _maxrss_mib()
    # Keep every executor referenced: memory an executor retains after stop()
    # (buffers, threads, closures) must show up in the peak.
    kept = []
    for _ in range(count):
        executor = _trivial(ctx)
        executor.start()
        executor.stop()
        kept.append(executor)
    after = _maxrss_mib()
    del warm_up
    ctx.record("maxrss_mib", after)
    ctx.record("growth_mib", after - before)


def spawn(ctx: Context) -> None:
    true = shutil.which("true") or "/bin/true"
    mk = ctx.mirakuru
    reps = ctx.pick(20, 3)
    for rep in range(reps + 1):
        executor = mk.SimpleExecutor([true])
        begin = clock()
        executor.start()
        elapsed = clock() - begin
        executor.stop()
        if rep:  # the first one warms caches; it is not a sample
            ctx.record("start_ms", elapsed * 1000.0)


def spawn_loop(ctx: Context) -> None:
    """start() of a SimpleExecutor in a start/stop loop, of a process that keeps running."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    mk = ctx.mirakuru
    reps = ctx.pick(30, 5)
    for rep in range(reps + 1):
        executor = mk.SimpleExecutor([sleep, "100"])
        begin = clock()
        executor.start()
        elapsed = clock() - begin
        executor.stop()
        if rep:  # only starts that follow a stop() count: the loop, not the first start
            ctx.record("start_ms", elapsed * 1000.0)


def _time_python(code: str, env: dict[str, str], cwd: str) -> float:
    # -I: no PYTHONPATH, no cwd on sys.path, so only the installed mirakuru is seen.
    begin = clock()
    subprocess.run(
        [sys.executable, "-I", "-c", code],
        env=env,
        cwd=cwd,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    return clock() - begin


def import_time(ctx: Context) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    cwd = str(ctx.workdir)
    pairs = ctx.pick(10, 3)
    _time_python("import mirakuru", env, cwd)  # warm the page cache
    with_import: list[float] = []
    bare: list[float] = []
    for _ in range(pairs):
        with_import.append(_time_python("import mirakuru", env, cwd))
        bare.append(_time_python("pass", env, cwd))
    delta = statistics.median(with_import) - statistics.median(bare)
    ctx.record("import_ms", delta * 1000.0)


def spawn_cold(ctx: Context) -> None:
    """start() of a SimpleExecutor after an idle spell (as a test's first fixture sees it)."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    mk = ctx.mirakuru
    for _ in range(ctx.pick(8, 2)):
        time.sleep(IDLE)  # the idle spell is what is measured, not a synchronisation
        executor = mk.SimpleExecutor([sleep, "100"])
        begin = clock()
        executor.start()
        elapsed = clock() - begin
        executor.stop()
        ctx.record("start_ms", elapsed * 1000.0)
