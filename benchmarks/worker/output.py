"""Scenarios about a chatty child's stdout, before and after the banner."""

from __future__ import annotations

from benchmarks.worker.support import (
    BANNER,
    Context,
    clock,
    service_command,
    start_to_stamp_ms,
    wait_for_file,
)

MIB = 1024 * 1024


def flood(ctx: Context) -> None:
    """Seconds until start() returns when the banner follows a lot of output."""
    size = ctx.pick(50, 5) * MIB
    cmd = service_command("flood", "--bytes", str(size))
    executor = ctx.mirakuru.OutputExecutor(cmd, banner=BANNER)
    begin = clock()
    try:
        executor.start()
        ctx.record("ready_s", clock() - begin)
    finally:
        executor.stop()


def flood_lag(ctx: Context) -> None:
    """Milliseconds from the banner's write (after 50 MiB of output) to start() returning."""
    size = ctx.pick(50, 5) * MIB
    for _ in range(ctx.pick(3, 1)):
        stamp = ctx.scratch("flood-lag") / "ready"
        cmd = service_command("flood", "--bytes", str(size), "--stamp", str(stamp))
        executor = ctx.mirakuru.OutputExecutor(cmd, banner=BANNER)
        ctx.record("lag_ms", start_to_stamp_ms(executor, stamp))


def after_banner(ctx: Context) -> None:
    """Does a child that keeps writing after the banner get to finish?

    If nobody drains the pipe, the child blocks once the pipe buffer (64 KiB) is
    full; the sample is then None ("blocks").
    """
    bound = ctx.pick_float(5.0, 2.0)
    marker = ctx.scratch("after-banner") / "done"
    cmd = service_command("after-banner", "--bytes", str(MIB), "--path", str(marker))
    executor = ctx.mirakuru.OutputExecutor(cmd, banner=BANNER)
    begin = clock()
    try:
        executor.start()
        waited = wait_for_file(marker, bound)
        ctx.record("complete_s", None if waited is None else clock() - begin)
    finally:
        executor.stop()
