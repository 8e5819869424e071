"""``python -m benchmarks``: set up the venvs, run every scenario, report."""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import chart, machine, report, results, venvs
from benchmarks.catalog import OURS, PUBLISHED, PUBLISHED_SPEC, SCENARIOS, Scenario
from benchmarks.runner import RunResult, Sandbox, run_worker

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROUNDS = 5


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark this checkout of mirakuru against the published "
        "release. Run from the repository root.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (~1 min): 1 round, reduced sizes, writes nothing unless --output is given",
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        help=f"worker runs per scenario and implementation (default "
        f"{DEFAULT_ROUNDS}, 1 with --quick)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help="run only these scenarios (glob patterns, comma-separated or "
        "repeated, e.g. --only 'lag-*,spawn')",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument(
        "--ours-spec",
        default=os.environ.get("BENCH_OURS_SPEC"),
        metavar="REQ",
        help="install this pip requirement in the 'ours' slot instead of the "
        "checkout, e.g. mirakuru==3.1.0 to test the harness "
        "(default: $BENCH_OURS_SPEC, else the checkout)",
    )
    parser.add_argument(
        "--published-spec",
        default=PUBLISHED_SPEC,
        metavar="REQ",
        help=f"pip requirement of the 'published' slot (default {PUBLISHED_SPEC})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write DIR/benchmarks.md and DIR/_static/benchmarks.png "
        "(default: docs/ for full runs, nothing for --quick)",
    )
    parser.add_argument("--no-write", action="store_true", help="write no report files")
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every per-run timeout by F (slow machines)",
    )
    parser.add_argument(
        "--venvs",
        type=Path,
        default=ROOT / "benchmarks" / ".venvs",
        metavar="DIR",
        help="where the cached virtual environments live",
    )
    parser.add_argument("--rebuild", action="store_true", help="reinstall both venvs first")
    parser.add_argument(
        "--portable",
        action="store_true",
        help="run ours with MIRAKURU_PORTABLE=1 (no Linux fast paths) in the lag-* and "
        "stop-* scenarios; published is unaffected",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any run failed, timed out or left survivors",
    )
    return parser.parse_args(argv)


def select(patterns: Sequence[str] | None) -> list[Scenario]:
    if not patterns:
        return list(SCENARIOS)
    wanted = [p.strip() for arg in patterns for p in arg.split(",") if p.strip()]
    unknown = [p for p in wanted if not any(fnmatch.fnmatch(s.name, p) for s in SCENARIOS)]
    if unknown:
        names = ", ".join(s.name for s in SCENARIOS)
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from: {names}")
    return [s for s in SCENARIOS if any(fnmatch.fnmatch(s.name, p) for p in wanted)]


#: Scenarios whose code paths differ in ours' portable mode (pidfd, inotify, sock_diag).
PORTABLE_PATTERNS = ("lag-*", "stop-*")


def portable_env(args: argparse.Namespace, scenario: Scenario, impl: str) -> dict[str, str]:
    """Extra environment of one worker run: MIRAKURU_PORTABLE=1 for ours under --portable."""
    if not args.portable or impl != OURS:
        return {}
    if not any(fnmatch.fnmatch(scenario.name, p) for p in PORTABLE_PATTERNS):
        return {}
    return {"MIRAKURU_PORTABLE": "1"}


def say(text: str) -> None:
    print(text, flush=True)


def setup(args: argparse.Namespace) -> dict[str, venvs.Venv]:
    slots = [
        venvs.Slot(OURS, args.ours_spec),
        venvs.Slot(PUBLISHED, args.published_spec),
    ]
    with ThreadPoolExecutor(len(slots)) as pool:
        futures = [
            pool.submit(venvs.ensure, slot, ROOT, args.venvs, args.rebuild, say) for slot in slots
        ]
        return {slot.impl: f.result() for slot, f in zip(slots, futures, strict=True)}


def _short(run: RunResult) -> str:
    return f"{run.status} {run.wall_s:.1f}s"


def measure(
    args: argparse.Namespace,
    scenarios: Sequence[Scenario],
    envs: dict[str, venvs.Venv],
    rounds: int,
) -> list[results.Collected]:
    collected = []
    sandbox = Sandbox()
    try:
        for index, scenario in enumerate(scenarios, 1):
            item = results.Collected(scenario)
            collected.append(item)
            limit = scenario.quick_timeout if args.quick else scenario.timeout
            limit *= args.timeout_scale
            for round_no in range(1, rounds + 1):
                # Alternate A, B within each round so drift hits both alike.
                line = []
                for impl in (OURS, PUBLISHED):
                    extra = portable_env(args, scenario, impl)
                    run = run_worker(envs[impl], scenario.name, args.quick, limit, sandbox, extra)
                    item.runs[impl].append(run)
                    line.append(f"{impl} {_short(run)}")
                say(
                    f"[{index:2}/{len(scenarios)}] {scenario.name:<18} "
                    f"round {round_no}/{rounds}: " + ", ".join(line)
                )
    finally:
        sandbox.close()
    return collected


def write(
    out_dir: Path,
    meta: report.Meta,
    rows: list[results.Row],
    collected: list[results.Collected],
    alerts: list[str],
    failures: list[results.Failure],
) -> None:
    image = out_dir / "_static" / "benchmarks.png"
    skipped = chart.render(rows, image)
    if skipped:
        say(skipped)
    page = report.markdown(
        meta,
        rows,
        collected,
        alerts,
        failures,
        None if skipped else "_static/benchmarks.png",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.md").write_text(page)
    say(f"wrote {out_dir / 'benchmarks.md'}" + ("" if skipped else f" and {image}"))


def output_dir(args: argparse.Namespace) -> Path | None:
    """Where to write the report; CI's quick runs must not dirty the tree."""
    if args.no_write:
        return None
    if args.output:
        return Path(args.output)
    return None if args.quick else ROOT / "docs"


def show(
    rows: list[results.Row],
    collected: list[results.Collected],
    alerts: list[str],
    failures: list[results.Failure],
) -> None:
    say("")
    say(report.text_table(rows))
    for failure in failures:
        say(f"  {failure.title()}")
        for line in failure.tail.splitlines()[:-1]:  # the last is the headline
            say(f"      | {line}")
    for alert in alerts:
        say(f"!!! CORRECTNESS: {alert}")
    say("")
    shared = {impl: results.shared_notes(collected, impl) for impl in (OURS, PUBLISHED)}
    for impl, notes in shared.items():
        for note in notes:
            say(f"note [most scenarios] {impl}: {note}")
    for item in collected:
        if item.scenario.note:
            say(f"note [{item.scenario.name}]: {item.scenario.note}")
        for impl in (OURS, PUBLISHED):
            for note in item.notes(impl, skip=shared[impl]):
                say(f"note [{item.scenario.name}] {impl}: {note}")


def describe_run(
    args: argparse.Namespace,
    argv: Sequence[str],
    envs: dict[str, venvs.Venv],
    rounds: int,
    load_at_start: str,
) -> report.Meta:
    ours = envs[OURS].description
    if args.ours_spec is None:
        ours += f", {machine.checkout(ROOT)}"
    return report.Meta(
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=shlex.join(["python", "-m", "benchmarks", *argv]),
        machine=machine.describe(),
        ours=ours,
        published=envs[PUBLISHED].description,
        rounds=rounds,
        quick=args.quick,
        load=(load_at_start, machine.load()),
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (e.g. CI cancelling the job) takes the same cleanup path as Ctrl-C:
    # kill the running worker's group and every process carrying its token.
    signal.signal(signal.SIGTERM, _interrupt)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    scenarios = select(args.only)
    if args.list:
        for scenario in scenarios:
            say(f"{scenario.name:<18} {scenario.title}")
        return 0
    rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    out_dir = output_dir(args)

    try:
        with venvs.locked(args.venvs, say):
            envs = setup(args)
            say(f"ours: {envs[OURS].description}; published: {envs[PUBLISHED].description}")
            load_at_start = machine.load()
            collected = measure(args, scenarios, envs, rounds)
    except venvs.SetupError as exc:
        say(f"benchmark setup failed: {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; worker processes were cleaned up")
        return 130

    rows = results.rows(collected)
    alerts = results.alerts(collected)
    failures = results.failures(collected)
    show(rows, collected, alerts, failures)
    if out_dir is not None:
        meta = describe_run(args, argv, envs, rounds, load_at_start)
        write(out_dir, meta, rows, collected, alerts, failures)
    if args.strict and (failures or alerts):
        return 1
    return 0
