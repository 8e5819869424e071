"""Measuring how late an event loop turns: a task that asks to wake every millisecond."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

import anyio
import anyio.abc

__all__ = ["StallMeter"]


class StallMeter:
    """``async with StallMeter() as meter:`` then ``meter.worst``: the longest delay of a
    1 ms sleep past its due time while the block ran, in seconds."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.worst = 0.0
        self.turns = 0
        self._group: anyio.abc.TaskGroup | None = None

    async def _measure(self) -> None:
        while True:
            due = time.perf_counter() + self.period
            await anyio.sleep(self.period)
            self.worst = max(self.worst, time.perf_counter() - due)
            self.turns += 1

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._measure)
        await anyio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(exc_type, exc_value, traceback)
