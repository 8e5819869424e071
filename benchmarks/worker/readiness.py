"""Scenarios about start(): detection lag per readiness kind, CPU while waiting."""

from __future__ import annotations

import random
import resource
from pathlib import Path
from typing import Any

from benchmarks.worker import api
from benchmarks.worker.support import (
    BANNER,
    TRIVIAL,
    TRIVIAL_BANNER,
    Context,
    clock,
    free_port,
    service_command,
    start_to_stamp_ms,
)


def build(ctx: Context, kind: str, delay: float, stamp: Path, tmp: Path, **options: float) -> Any:
    """An executor for a ``kind`` fixture ready after ``delay``, default settings + ``options``."""
    mk = ctx.mirakuru
    common = ["--delay", f"{delay:.6f}", "--stamp", str(stamp)]
    if kind == "output":
        return mk.OutputExecutor(service_command("output", *common), banner=BANNER, **options)
    if kind == "tcp":
        port = free_port()
        cmd = service_command("tcp", *common, "--port", str(port))
        return mk.TCPExecutor(cmd, host="127.0.0.1", port=port, **options)
    if kind == "http":
        port = free_port()
        cmd = service_command("http", *common, "--port", str(port))
        return mk.HTTPExecutor(cmd, url=f"http://127.0.0.1:{port}/", **options)
    if kind == "pid":
        path = tmp / "service.pid"
        cmd = service_command("pid", *common, "--path", str(path))
        return mk.PidExecutor(cmd, filename=str(path), **options)
    if kind == "unix":
        path = tmp / "service.sock"
        cmd = service_command("unix", *common, "--path", str(path))
        return mk.UnixSocketExecutor(cmd, socket_name=str(path), **options)
    if kind == "sdnotify":
        probe = api.sd_notify_probe(ctx)
        return mk.Executor(service_command("sdnotify", *common), ready=probe, **options)
    raise ValueError(f"unknown readiness kind {kind!r}")


def lag(ctx: Context, kind: str) -> None:
    """Milliseconds from the fixture being ready to start() returning."""
    if kind == "sdnotify" and api.sd_notify_probe(ctx) is None:
        ctx.status = "n/a"
        ctx.note("published mirakuru has no sd_notify readiness")
        return
    _sample_lags(ctx, kind, 0.25, (6, 1))


def lag_after(ctx: Context, kind: str, delay: float, reps: tuple[int, int]) -> None:
    """Lag for a server that starts listening ``delay`` s after its interpreter started.

    The fixture stamps the instant right after ``listen()`` returned (HTTP: after the
    server bound and listened), so the lag includes everything from the socket being
    connectable to start() returning: the polling gap, the accept confirmation, and the
    work done after the check succeeded.
    """
    _sample_lags(ctx, kind, delay, reps)


def lag_with_sleep(ctx: Context, kind: str, sleep: float) -> None:
    """Lag at an explicit ``sleep``, server listening after 250 ms (plus a random phase)."""
    _sample_lags(ctx, kind, 0.25, (5, 2), sleep=sleep)


def _sample_lags(
    ctx: Context, kind: str, delay: float, reps: tuple[int, int], **options: float
) -> None:
    """Record the lag of ``reps`` starts of a ``kind`` fixture ready after ``delay`` s."""
    for phase in _phases(ctx.pick(*reps)):
        tmp = ctx.scratch(kind)
        stamp = tmp / "ready"
        executor = build(ctx, kind, delay + phase, stamp, tmp, **options)
        ctx.record("lag_ms", start_to_stamp_ms(executor, stamp))


#: The published polling interval: the phases below cover one of its cycles.
_POLL_CYCLE = 0.1


def _phases(count: int) -> list[float]:
    """``count`` phases within one 0.1 s polling cycle, one per equal slice, shuffled.

    A polling implementation's lag depends on where in its cycle the service becomes ready.
    Independent uniform phases leave the median of a handful of samples anywhere between
    ~30 and ~70 ms for published (one draw of 6 samples has a standard error of ~20 ms);
    one phase per slice (stratified, jittered within it) has the same mean and samples the
    whole cycle every run, so the ratio measures the implementations, not the draw.
    """
    slice_ = _POLL_CYCLE / count
    phases = [slice_ * (index + random.random()) for index in range(count)]  # noqa: S311
    random.shuffle(phases)
    return phases


def process_cpu() -> float:
    """User + system CPU seconds of this whole process (every thread), as getrusage says."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def waiting_cpu(
    ctx: Context, kind: str, waits: tuple[float, float] = (2.0, 0.5), **options: float
) -> None:
    """CPU of this process (getrusage, every thread) over one start() that waits
    ``waits`` seconds (a full run's, a quick one's), in a process that already started a
    service of the same kind (executor built with ``options``, such as ``sleep``)."""
    if kind == "sdnotify" and api.sd_notify_probe(ctx) is None:
        # Published cannot wait for sd_notify; what its users do instead, and what an
        # event-driven wait must not cost more than, is polling every 0.1 s: the banner.
        ctx.note("published has no sd_notify readiness: it waits for the banner instead")
        kind = "output"
    delay = ctx.pick_float(*waits)
    # A warm process, as a test session's is after its first fixture: one-time costs
    # (imports such as http.client, a helper process or thread started on first use, the
    # first netlink socket) belong to no particular wait. Measured with a cold kind, they
    # were a third of ours' HTTP wait.
    warm_up = ctx.mirakuru.OutputExecutor(TRIVIAL, banner=TRIVIAL_BANNER)
    warm_up.start()
    warm_up.stop()
    tmp = ctx.scratch(f"{kind}-warm-up")
    warm = build(ctx, kind, 0.0, tmp / "ready", tmp, **options)
    warm.start()
    warm.stop()
    tmp = ctx.scratch(kind)
    executor = build(ctx, kind, delay, tmp / "ready", tmp, **options)
    try:
        cpu0, wall0 = process_cpu(), clock()
        executor.start()
        cpu1, wall1 = process_cpu(), clock()
    finally:
        executor.stop()
    ctx.record("cpu_pct", 100.0 * (cpu1 - cpu0) / (wall1 - wall0))
    ctx.record("cpu_ms", 1000.0 * (cpu1 - cpu0))
