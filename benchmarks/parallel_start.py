"""Parallel start: three services that each need about 1 s to be ready.

Started with :func:`mirakuru.start_all` they are ready after about one second; one after
another, after about three. Run from the repository root::

    python -m benchmarks.parallel_start [--rounds N]

Prints each round's times and the median ratio group / sequential (target: <= 0.4).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from mirakuru import Executor, probes, start_all

#: A service that prints its banner after ``READY_AFTER`` seconds of start-up work.
READY_AFTER = 1.0
SERVICE = (
    "import sys, time\n"
    "time.sleep(float(sys.argv[1]))\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)
TARGET = 0.4


def _services() -> list[Executor]:
    return [
        Executor(
            [sys.executable, "-c", SERVICE, str(READY_AFTER)],
            ready=probes.banner("^ready$"),
            timeout=30,
        )
        for _ in range(3)
    ]


def sequential() -> float:
    """Seconds until all three are ready, started one after another."""
    executors = _services()
    began = time.perf_counter()
    try:
        for executor in executors:
            executor.start()
        return time.perf_counter() - began
    finally:
        for executor in reversed(executors):
            executor.stop()


def grouped() -> float:
    """Seconds until all three are ready, started together."""
    executors = _services()
    began = time.perf_counter()
    with start_all(*executors):
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args(argv).rounds
    ratios = []
    for number in range(1, rounds + 1):
        one_by_one = sequential()
        together = grouped()
        ratios.append(together / one_by_one)
        print(
            f"round {number}: sequential {one_by_one:.3f} s, group {together:.3f} s,"
            f" ratio {ratios[-1]:.3f}"
        )
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"median ratio {ratio:.3f} ({verdict} the target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
