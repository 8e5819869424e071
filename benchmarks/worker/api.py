"""The narrow bridge to the mirakuru under test.

mirakuru is imported dynamically and handled as ``Any``: the two implementations
differ in a few optional features (``stop_timeout``, ``probes``), and the worker
must type-check whether or not the checkout currently has a ``mirakuru/``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from benchmarks.catalog import PUBLISHED
from benchmarks.worker.support import ApiMissing, Context


def load() -> Any:
    return importlib.import_module("mirakuru")


def version() -> str:
    try:
        return importlib.metadata.version("mirakuru")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def with_grace(ctx: Context, build: Callable[..., Any], seconds: float) -> Any:
    """Build an executor that gives SIGTERM ``seconds`` before escalating.

    Ours has a dedicated ``stop_timeout``.  Published has none: stop() waits for
    the executor's ``timeout``, so that is the only way to get the same grace.
    """
    try:
        executor = build(stop_timeout=seconds)
    except TypeError as exc:
        if "stop_timeout" not in str(exc):
            raise
    else:
        ctx.note(f"grace via stop_timeout={seconds:g}")
        return executor
    ctx.note(f"grace via timeout={seconds:g} (no stop_timeout keyword)")
    return build(timeout=seconds)


def sd_notify_probe(ctx: Context) -> Any | None:
    """``probes.sd_notify()``, or None where it legitimately does not exist."""
    try:
        probes = importlib.import_module("mirakuru.probes")
        factory = probes.sd_notify
    except (ImportError, AttributeError) as exc:
        if ctx.impl == PUBLISHED:
            return None
        raise ApiMissing(f"mirakuru.probes.sd_notify is not available: {exc}") from exc
    return factory()
