"""How an executor plans its start: the one place its settings become a
:class:`~mirakuru.core.plan.StartPlan` (the budget, the schedule, what wakes the wait).

A mixin of :class:`~mirakuru.base.SimpleExecutor`. ``start()``, ``astart()`` and
:func:`mirakuru.testing.simulate_start` all ask :meth:`StartPlanning._start_plan`, so a
simulated start waits exactly as a real one would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirakuru.core.plan import StartPlan, plan_start

if TYPE_CHECKING:
    from mirakuru.core.probes import Probe

__all__ = ["StartPlanning"]


class StartPlanning:
    """``_start_plan()`` and the two answers it needs from the executor's class."""

    if TYPE_CHECKING:  # what the mixin uses of SimpleExecutor
        _timeout: float | None
        _sleep: float
        _adaptive: bool

        @property
        def _pidfd(self) -> int | None: ...

    def _readiness_probe(self) -> Probe | None:
        """The probe that decides readiness: none, for an executor that waits for nothing."""
        return None

    def _stock_readiness(self) -> bool:
        """Whether readiness is the probe's alone, with no class-specific check around it."""
        return False

    def _start_plan(self, exits_wake: bool | None = None) -> StartPlan:
        """What a start decides before it waits. ``exits_wake``: whether the exit wakes
        the wait at once (default: whether the current run has a pidfd)."""
        return plan_start(
            timeout=self._timeout,
            sleep=self._sleep,
            adaptive=self._adaptive,
            probe=self._readiness_probe(),
            stock=self._stock_readiness(),
            exits_wake=self._pidfd is not None if exits_wake is None else exits_wake,
        )
