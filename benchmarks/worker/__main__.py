"""Run one scenario against the installed mirakuru and report samples as JSON.

Usage (by the harness, with a benchmark venv's interpreter and a cwd outside the
repository so that the *installed* mirakuru is the one imported)::

    python -m benchmarks.worker SCENARIO --impl ours|published [--quick] --json

Exit status 0 with one JSON object on stdout; on failure, a message or traceback
on stderr and a non-zero status (the harness reports ERROR with the tail).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.catalog import BY_NAME, IMPLEMENTATIONS
from benchmarks.worker import aio, api, output, readiness, reuse, stacks, stopping, throughput
from benchmarks.worker.support import ApiMissing, Context, describe, kill_leftovers

RUNNERS: dict[str, Callable[[Context], None]] = {
    "lag-output": partial(readiness.lag, kind="output"),
    "lag-tcp": partial(readiness.lag, kind="tcp"),
    "lag-http": partial(readiness.lag, kind="http"),
    "lag-pid": partial(readiness.lag, kind="pid"),
    "lag-unix": partial(readiness.lag, kind="unix"),
    "lag-sdnotify": partial(readiness.lag, kind="sdnotify"),
    "cpu-tcp": partial(readiness.waiting_cpu, kind="tcp"),
    "cpu-output": partial(readiness.waiting_cpu, kind="output"),
    "cpu-http": partial(readiness.waiting_cpu, kind="http"),
    "cpu-sdnotify": partial(readiness.waiting_cpu, kind="sdnotify"),
    "cpu-tcp-30s": partial(readiness.waiting_cpu, kind="tcp", waits=(30.0, 12.0)),
    "lag-tcp-200ms": partial(readiness.lag_after, kind="tcp", delay=0.2, reps=(8, 2)),
    "lag-http-200ms": partial(readiness.lag_after, kind="http", delay=0.2, reps=(8, 2)),
    "lag-tcp-250ms": partial(readiness.lag_after, kind="tcp", delay=0.25, reps=(8, 2)),
    "lag-tcp-1s": partial(readiness.lag_after, kind="tcp", delay=1.0, reps=(5, 1)),
    "lag-tcp-5s": partial(readiness.lag_after, kind="tcp", delay=5.0, reps=(3, 1)),
    "lag-http-250ms": partial(readiness.lag_after, kind="http", delay=0.25, reps=(8, 2)),
    "lag-http-1s": partial(readiness.lag_after, kind="http", delay=1.0, reps=(5, 1)),
    "lag-http-5s": partial(readiness.lag_after, kind="http", delay=5.0, reps=(3, 1)),
    "lag-tcp-sleep01": partial(readiness.lag_with_sleep, kind="tcp", sleep=0.01),
    "lag-http-sleep01": partial(readiness.lag_with_sleep, kind="http", sleep=0.01),
    "cpu-tcp-sleep01": partial(readiness.waiting_cpu, kind="tcp", sleep=0.01),
    "cpu-output-sleep01": partial(readiness.waiting_cpu, kind="output", sleep=0.01),
    "cycles-sleep01": partial(throughput.cycles, sleep=0.01),
    "stop-stragglers": stopping.stop_stragglers,
    "spawn-loop": throughput.spawn_loop,
    "spawn-cold": throughput.spawn_cold,
    "flood-lag": output.flood_lag,
    "stop-term": stopping.stop_term,
    "stop-ignore": stopping.stop_ignore,
    "stop-tree": stopping.stop_tree,
    "cycles": throughput.cycles,
    "flood": output.flood,
    "after-banner": output.after_banner,
    "memory": throughput.memory,
    "import": throughput.import_time,
    "spawn": throughput.spawn,
    "async-ten": aio.ten_at_once,
    "async-stall": aio.loop_stall,
    "async-cpu-tcp": partial(aio.waiting_cpu, kind="tcp"),
    "async-cpu-output": partial(aio.waiting_cpu, kind="output"),
    "stack-3x1s": stacks.stack_ready,
    "reuse-2s": reuse.second_run,
}
assert set(RUNNERS) == set(BY_NAME), "worker and catalog disagree on scenarios"


def run(scenario: str, impl: str, quick: bool) -> dict[str, object]:
    mirakuru = api.load()
    with tempfile.TemporaryDirectory(prefix="mirakuru-bench-") as tmp:
        ctx = Context(impl=impl, quick=quick, mirakuru=mirakuru, workdir=Path(tmp))
        if os.environ.get("MIRAKURU_PORTABLE"):
            ctx.note("MIRAKURU_PORTABLE=1 (portable fallbacks, no Linux fast paths)")
        try:
            RUNNERS[scenario](ctx)
        finally:
            leftovers = kill_leftovers()
        if leftovers:
            # Not necessarily a leak: an implementation may keep a helper
            # (e.g. a watchdog) alive for as long as its owner process lives.
            ctx.note(f"alive at worker exit, killed: {describe(leftovers)}")
    return {
        "scenario": scenario,
        "impl": impl,
        "status": ctx.status,
        "metrics": ctx.metrics,
        "notes": ctx.notes,
        "mirakuru_file": str(Path(mirakuru.__file__).resolve()),
        "mirakuru_version": api.version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("scenario", choices=sorted(RUNNERS))
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    try:
        result = run(args.scenario, args.impl, args.quick)
    except ApiMissing as exc:
        print(f"API missing: {exc}", file=sys.stderr)
        return 3
    except Exception:
        traceback.print_exc()
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
