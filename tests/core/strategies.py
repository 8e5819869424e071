"""Hypothesis strategies and a fake clock for the pure core, kept in one place."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["FakeClock", "durations", "instants", "timeouts"]

#: Clock readings: monotonic clocks start anywhere, and keep to a sane magnitude.
instants = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
#: Finite, non-negative durations in seconds.
durations = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
#: What users pass as a timeout: a duration or no limit at all.
timeouts = st.none() | durations


class FakeClock:
    """A monotonic clock that only moves when a test tells it to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        assert seconds >= 0
        self.now += seconds
