"""Scenarios about stop(): latency, grace handling, and killing a whole tree."""

from __future__ import annotations

import time

from benchmarks.worker import api
from benchmarks.worker.support import (
    BANNER,
    Context,
    clock,
    describe,
    is_dying,
    kill_leftovers,
    service_command,
    token_processes,
)

GRACE = 1.0
TREE_SIZE = 50


def stop_term(ctx: Context) -> None:
    """stop() of a process that exits on the first SIGTERM."""
    mk = ctx.mirakuru
    for _ in range(ctx.pick(5, 2)):
        executor = mk.OutputExecutor(service_command("term-honour"), banner=BANNER)
        executor.start()
        begin = clock()
        executor.stop()
        ctx.record("stop_ms", (clock() - begin) * 1000.0)


def stop_ignore(ctx: Context) -> None:
    """stop() of a process that ignores SIGTERM: should take the grace, no more."""
    mk = ctx.mirakuru

    def build(**grace: float) -> object:
        return mk.OutputExecutor(service_command("term-ignore"), banner=BANNER, **grace)

    executor = api.with_grace(ctx, build, GRACE)
    executor.start()
    begin = clock()
    executor.stop()
    ctx.record("stop_ms", (clock() - begin) * 1000.0)


def stop_tree(ctx: Context) -> None:
    """stop() of a parent with many SIGTERM-ignoring children; count survivors."""
    mk = ctx.mirakuru
    cmd = service_command("tree", "--count", str(TREE_SIZE))

    def build(**grace: float) -> object:
        return mk.OutputExecutor(cmd, banner=BANNER, **grace)

    executor = api.with_grace(ctx, build, GRACE)
    executor.start()
    started = len(token_processes())
    if started < TREE_SIZE + 1:
        ctx.note(f"only {started} tree processes were running before stop()")
    begin = clock()
    executor.stop()
    elapsed = clock() - begin
    remaining = token_processes()  # the instant stop() returned
    survivors = [p for p in remaining if not is_dying(p.pid)]
    ctx.record("stop_ms", elapsed * 1000.0)
    ctx.record("survivors", float(len(survivors)))
    if len(remaining) > len(survivors):
        ctx.note("some processes were still dying (SIGKILL pending) as stop() returned")
    if survivors:
        ctx.note(f"SURVIVORS after stop(): {describe(survivors)}")
        time.sleep(0.5)
        late = len(token_processes())
        ctx.note(f"{late} of them still alive 0.5 s later")
    # Never leave the tree behind, whatever the implementation did.
    kill_leftovers()
