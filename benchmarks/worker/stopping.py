"""Scenarios about stop(): latency, grace handling, and killing a whole tree."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psutil

from benchmarks.worker import api
from benchmarks.worker.support import (
    BANNER,
    Context,
    bounded_call,
    clock,
    describe,
    is_dying,
    service_command,
    short_name,
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


def _tree_members(path: Path) -> list[psutil.Process]:
    """The fixture tree's processes, pinned now (psutil guards against pid reuse)."""
    members = []
    for line in path.read_text(encoding="ascii").split():
        with contextlib.suppress(psutil.NoSuchProcess):
            members.append(psutil.Process(int(line)))
    return members


def _alive(proc: psutil.Process) -> bool:
    try:
        running = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    return running and not is_dying(proc.pid)


def stop_tree(ctx: Context) -> None:
    """stop() of a parent with many SIGTERM-ignoring children; count survivors."""
    mk = ctx.mirakuru
    pids = ctx.scratch("tree") / "pids"
    cmd = service_command("tree", "--count", str(TREE_SIZE), "--path", str(pids))

    def build(**grace: float) -> object:
        return mk.OutputExecutor(cmd, banner=BANNER, **grace)

    executor = api.with_grace(ctx, build, GRACE)
    executor.start()
    members = _tree_members(pids)
    if len(members) < TREE_SIZE + 1:
        ctx.note(f"only {len(members)} tree processes were running before stop()")
    begin = clock()
    executor.stop()
    elapsed = clock() - begin
    # Judged the instant stop() returned; a process already hit by SIGKILL but
    # not yet reaped by the kernel counts as dead.
    survivors = [p for p in members if _alive(p)]
    ctx.record("stop_ms", elapsed * 1000.0)
    ctx.record("survivors", float(len(survivors)))
    if survivors:
        ctx.note(f"SURVIVORS after stop(): {describe([short_name(p) for p in survivors])}")
        time.sleep(0.5)
        late = sum(1 for p in survivors if _alive(p))
        ctx.note(f"{late} of them still alive 0.5 s later")
    # Never leave the tree behind, whatever the implementation did.
    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def stop_stragglers(ctx: Context) -> None:
    """stop() with default settings when the leader exits but 50 children ignore SIGTERM.

    The bound is the worker's own: a stop() still running after it is recorded as a
    miss (None), and the tree is killed here so the run still ends clean.
    """
    mk = ctx.mirakuru
    pids = ctx.scratch("stragglers") / "pids"
    cmd = service_command("stragglers", "--count", str(TREE_SIZE), "--path", str(pids))
    executor = mk.OutputExecutor(cmd, banner=BANNER)
    executor.start()
    members = _tree_members(pids)
    took = bounded_call(executor.stop, ctx.pick_float(20.0, 10.0))
    survivors = [p for p in members if _alive(p)]
    ctx.record("stop_ms", None if took is None else took * 1000.0)
    ctx.record("survivors", float(len(survivors)))
    if took is None:
        ctx.note("stop() had not returned within the bound")
    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.kill()
