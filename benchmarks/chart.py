"""Bar chart of ours/published ratios (optional: needs the ``bench`` extra)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from pathlib import Path

from benchmarks.catalog import Better, TargetKind
from benchmarks.results import Row

COLOURS = {"yes": "#2e8b57", "NO": "#c0392b", "": "#8c8c8c"}


def render(rows: Sequence[Row], path: Path) -> str | None:
    """Draw the chart; return None on success or why it was skipped."""
    try:
        # Imported lazily: matplotlib is optional and slow to import.
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    drawn = [r for r in rows if r.ratio is not None and r.ratio > 0]
    if not drawn:
        return "chart skipped: no metric has a ratio"
    labels = []
    for row in drawn:
        arrow = " (higher better)" if row.metric.better is Better.HIGHER else ""
        labels.append(f"{row.scenario.name}: {row.metric.label}{arrow}")
    ratios = [r.ratio for r in drawn if r.ratio is not None]

    fig, ax = plt.subplots(figsize=(10, 0.45 * len(drawn) + 1.6), dpi=110)
    ys = list(range(len(drawn)))[::-1]
    ax.barh(ys, ratios, color=[COLOURS[r.met] for r in drawn], height=0.6)
    marks = []
    for y, row, ratio in zip(ys, drawn, ratios, strict=True):
        label_at = ratio
        target = row.metric.target
        if target and target.kind in (TargetKind.RATIO_AT_MOST, TargetKind.RATIO_AT_LEAST):
            ax.plot([target.value] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
            marks.append(target.value)
            label_at = max(ratio, target.value)  # keep the label clear of the tick
        ax.text(label_at * 1.12, y, f"{ratio:.3g}", va="center", fontsize=7)
    ax.axvline(1.0, color="#444444", lw=1, ls="--")
    ax.set_xscale("log")
    # Whole decades with room for the value labels and every target tick.
    low = min([*ratios, *marks, 0.1]) / 2
    high = max([*ratios, *marks, 1.0]) * 3
    ax.set_xlim(10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high)))
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(
        "ours / published (log scale; black tick = target; metrics without a ratio "
        "are in the table only)"
    )
    ax.set_title("mirakuru: this checkout vs published (green = target met)")
    ax.grid(axis="x", which="major", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
