"""Timeout budgets: absolute deadlines on an injected clock."""

from __future__ import annotations

import math

import attrs

from mirakuru.core.validate import check_duration

__all__ = ["FOREVER", "Budget", "Timeouts", "unlimited"]

#: Limits of at least this many seconds (about 31 years; ``math.inf`` too) mean "no limit":
#: no deadline that far away can be told from none, and no system call can wait that long.
FOREVER = 1e9


def unlimited(seconds: float | None) -> bool:
    """Whether a time limit means "no limit": ``None``, infinite, or :data:`FOREVER` or more."""
    return seconds is None or seconds >= FOREVER


@attrs.frozen(slots=True)
class Budget:
    """A deadline on some monotonic clock; ``None`` means no deadline at all.

    Every method takes the current clock reading as ``now`` so the budget itself never
    reads a clock: the adapter passes a real reading, tests pass a fake one.
    """

    deadline: float | None

    @classmethod
    def starting_at(cls, now: float, timeout: float | None) -> Budget:
        """A budget of ``timeout`` seconds from ``now`` (unbounded for ``None``)."""
        check_duration("timeout", timeout, allow_none=True)
        if timeout is None or unlimited(timeout):
            return cls(None)
        return cls(now + timeout)

    @classmethod
    def unbounded(cls) -> Budget:
        """A budget that never expires."""
        return cls(None)

    def remaining(self, now: float) -> float:
        """Seconds left at ``now``: never negative, infinite when unbounded."""
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - now)

    def expired(self, now: float) -> bool:
        """Whether the deadline has been reached at ``now``."""
        return self.deadline is not None and now >= self.deadline

    def clamp(self, attempt_timeout: float | None, now: float) -> float:
        """The limit for one attempt: the smaller of ``attempt_timeout`` and what remains."""
        remaining = self.remaining(now)
        if attempt_timeout is None:
            return remaining
        return min(attempt_timeout, remaining)

    def child(self, timeout: float | None, now: float) -> Budget:
        """A sub-budget of ``timeout`` seconds from ``now`` that never outlives this one."""
        own = Budget.starting_at(now, timeout)
        if self.deadline is None:
            return own
        if own.deadline is None:
            return self
        return Budget(min(self.deadline, own.deadline))


@attrs.frozen(slots=True)
class Timeouts:
    """The named time limits of one executor, in seconds (``None``: no limit).

    ``start`` is the one deadline shared by every check on the way up; ``stop`` is the
    grace period between the stop signal and the kill signal; ``attempt`` bounds a single
    readiness attempt (a connect, a request) within whatever ``start`` leaves.
    """

    start: float | None = attrs.field(default=3600.0)
    stop: float | None = attrs.field(default=None)
    attempt: float | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        check_duration("timeout", self.start, allow_none=True)
        check_duration("stop_timeout", self.stop, allow_none=True)
        check_duration("request_timeout", self.attempt, allow_none=True)

    @property
    def grace(self) -> float | None:
        """The stop grace period: ``stop`` if set, else the start timeout, as documented."""
        return self.stop if self.stop is not None else self.start
