"""A testing kit: check your executors' timeouts without spawning or waiting.

- :func:`simulate_start` plays out what an executor's ``start()`` would do against a
  scripted process (ready after some seconds, perhaps exiting), on a virtual clock, with
  the executor's own start-up decisions: its budget, its poll schedule, and whether its
  readiness is event-driven or polled. Nothing is spawned, nothing sleeps.
- :class:`FakeClock`, a clock that moves only when told, for anything that takes a clock.
- :func:`assert_lifecycle` checks an executor's history against a compact path such as
  ``"idle → starting → running → stopping → stopped"``, with a readable diff on failure.
- :mod:`mirakuru.testing.strategies`: hypothesis strategies for probes, budgets and poll
  schedules (it needs hypothesis: ``pip install 'mirakuru[testing]'``).
"""

from __future__ import annotations

from mirakuru.core.simulation import (
    EXIT_WAKE,
    NOTIFY_WAKE,
    OUTPUT_WAKE,
    WATCH_WAKE,
    NeverReturns,
    SimulatedStart,
)
from mirakuru.testing._clock import FakeClock
from mirakuru.testing._lifecycle import assert_lifecycle, lifecycle_path
from mirakuru.testing._simulate import simulate_start

__all__ = [
    "EXIT_WAKE",
    "NOTIFY_WAKE",
    "OUTPUT_WAKE",
    "WATCH_WAKE",
    "FakeClock",
    "NeverReturns",
    "SimulatedStart",
    "assert_lifecycle",
    "lifecycle_path",
    "simulate_start",
]
