"""Turn worker runs into table rows: medians, ratios, targets met or missed."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.catalog import (
    OURS,
    PUBLISHED,
    Better,
    Metric,
    Scenario,
    TargetKind,
)
from benchmarks.runner import RunResult


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | None
    samples: int = 0


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    metric: Metric
    ours: Cell
    published: Cell
    ratio: float | None
    target: str
    #: "yes", "NO", or "" when there is no target or nothing to judge.
    met: str


@dataclass
class Collected:
    """All runs of one scenario, per implementation."""

    scenario: Scenario
    runs: dict[str, list[RunResult]] = field(default_factory=lambda: {OURS: [], PUBLISHED: []})

    def notes(self, impl: str, skip: Sequence[str] = ()) -> list[str]:
        """Distinct worker notes of ``impl``'s runs, minus those in ``skip``."""
        seen: list[str] = []
        for run in self.runs[impl]:
            for note in run.notes:
                if note not in seen and note not in skip:
                    seen.append(note)
        return seen


def shared_notes(collected: Sequence[Collected], impl: str) -> list[str]:
    """Notes ``impl`` got in most scenarios: said once, not once per scenario."""
    counts: dict[str, int] = {}
    for item in collected:
        for note in item.notes(impl):
            counts[note] = counts.get(note, 0) + 1
    return [note for note, n in counts.items() if n >= 3 and n * 2 > len(collected)]


def _failure_text(runs: Sequence[RunResult]) -> str:
    statuses = [r.status for r in runs if r.status != "ok"]
    if not statuses:
        return ""
    for status, label in (("timeout", "TIMEOUT"), ("error", "ERROR"), ("n/a", "n/a")):
        if status in statuses:
            return label
    return statuses[0]


def summarise(runs: Sequence[RunResult], metric: Metric) -> Cell:
    ok = [r for r in runs if r.status == "ok"]
    failed = len(runs) - len(ok)
    samples = [s for r in ok for s in r.metrics.get(metric.key, [])]
    if not samples:
        return Cell(_failure_text(runs) or "no data", None)
    suffix = f" ({failed}/{len(runs)} {_failure_text(runs)})" if failed else ""
    hung = sum(1 for s in samples if s is None)
    numbers = [s for s in samples if s is not None]
    if hung:
        # Only "did it finish" metrics use None samples: a hang dominates.
        share = "" if hung == len(samples) else f" {hung}/{len(samples)}"
        return Cell(f"blocks{share}{suffix}", None, len(samples))
    if metric.worst:
        value = max(numbers) if metric.better is Better.LOWER else min(numbers)
    else:
        value = statistics.median(numbers)
    return Cell(f"{value:.{metric.digits}f}{suffix}", value, len(samples))


def _ratio(ours: Cell, published: Cell) -> float | None:
    if ours.value is None or published.value is None or published.value == 0:
        return None
    return ours.value / published.value


def _met(metric: Metric, ours: Cell, ratio: float | None) -> str:
    """ "yes"/"NO" against the target, "" when there is none or nothing to judge."""
    target = metric.target
    verdict: bool | None = None
    if target is None:
        pass
    elif ours.text.startswith(("ERROR", "TIMEOUT")):
        verdict = False  # a run that fails cannot meet any target
    elif target.kind is TargetKind.OURS_COMPLETES:
        # A None value with samples means at least one run blocked.
        verdict = ours.value is not None if ours.samples else None
    elif target.kind is TargetKind.OURS_AT_MOST:
        verdict = None if ours.value is None else ours.value <= target.value
    elif ratio is not None:
        at_most = target.kind is TargetKind.RATIO_AT_MOST
        verdict = ratio <= target.value if at_most else ratio >= target.value
    if verdict is None:
        return ""
    return "yes" if verdict else "NO"


def rows(collected: Sequence[Collected]) -> list[Row]:
    out = []
    for item in collected:
        for metric in item.scenario.metrics:
            ours = summarise(item.runs[OURS], metric)
            published = summarise(item.runs[PUBLISHED], metric)
            ratio = _ratio(ours, published)
            target = metric.target.describe() if metric.target else ""
            met = _met(metric, ours, ratio)
            out.append(Row(item.scenario, metric, ours, published, ratio, target, met))
    return out


def alerts(collected: Sequence[Collected]) -> list[str]:
    """Correctness problems that must not drown in the numbers."""
    out = []
    for item in collected:
        for impl in (OURS, PUBLISHED):
            runs = item.runs[impl]
            worst = max(
                (s or 0 for r in runs for s in r.metrics.get("survivors", [])),
                default=0,
            )
            if worst:
                out.append(
                    f"{impl}: {worst:.0f} process(es) survived stop() in {item.scenario.name}"
                )
            # Leftovers of a worker we killed (timeout) or that crashed are the
            # harness's doing, not the implementation's.
            leaked = sum(r.leaked for r in runs if r.status in ("ok", "n/a"))
            if leaked:
                out.append(
                    f"{impl}: the harness had to kill {leaked} process(es) left "
                    f"behind after {item.scenario.name} workers exited"
                )
    return out


@dataclass(frozen=True)
class Failure:
    """Failed worker runs that failed the same way."""

    headline: str
    count: int
    #: Last lines of the first such run's stderr (or the timeout message).
    tail: str

    def title(self) -> str:
        return self.headline + (f" (x{self.count})" if self.count > 1 else "")


def failures(collected: Sequence[Collected]) -> list[Failure]:
    """One entry per distinct failure, with how many runs failed that way."""
    seen: dict[str, list[RunResult]] = {}
    for item in collected:
        for impl in (OURS, PUBLISHED):
            for run in item.runs[impl]:
                if run.status not in ("error", "timeout"):
                    continue
                # The last line of a traceback is the exception itself.
                last = (run.detail.strip().splitlines() or [""])[-1]
                headline = f"{item.scenario.name} [{impl}] {run.status.upper()}: {last[:160]}"
                seen.setdefault(headline, []).append(run)
    return [Failure(h, len(runs), runs[0].detail.strip()) for h, runs in seen.items()]
