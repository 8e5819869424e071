"""A clock for tests: it reads what it was told, and moves only when told."""

from __future__ import annotations

import math

from mirakuru.core.validate import check_duration

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that moves only when a test moves it.

    Call it for a reading, as you would ``time.monotonic``: it is a
    ``Callable[[], float]``, so it goes wherever the API takes a clock or a clock reading
    (:func:`~mirakuru.testing.simulate_start`'s ``clock=``, a
    :class:`~mirakuru.core.budget.Budget`'s ``now``, a driver of the
    :class:`~mirakuru.core.engine.WaitEngine`). :meth:`sleep` moves it instead of
    sleeping, for code that takes a sleep function.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        """A clock reading ``start``."""
        if isinstance(start, bool) or not isinstance(start, int | float):
            raise TypeError(f"start must be a number, got {start!r} ({type(start).__name__})")
        if not math.isfinite(start):
            raise ValueError(f"start must be a finite number, got {start!r}")
        self._now = float(start)

    def __call__(self) -> float:
        """The current reading, as ``time.monotonic()`` would give it."""
        return self._now

    @property
    def now(self) -> float:
        """The current reading."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never back); returns the new reading."""
        check_duration("seconds", seconds, allow_none=False)
        self._now += seconds
        return self._now

    def advance_to(self, instant: float) -> float:
        """Move forward to ``instant``; a monotonic clock cannot go back, so an earlier
        instant is a :class:`ValueError`."""
        if isinstance(instant, bool) or not isinstance(instant, int | float):
            raise TypeError(f"instant must be a number, got {instant!r}")
        if not instant >= self._now:
            raise ValueError(f"a monotonic clock cannot go back from {self._now!r} to {instant!r}")
        self._now = float(instant)
        return self._now

    def sleep(self, seconds: float) -> None:
        """Stand in for ``time.sleep``: the time passes at once."""
        self.advance(seconds)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
