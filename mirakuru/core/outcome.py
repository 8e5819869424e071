"""What a wait ended with, as values the facade turns into transitions and errors.

A process that exits while we wait is not an outcome of its own: its exit wakes the wait at
once, and the overridable ``check_subprocess()`` decides what that exit means.
"""

from __future__ import annotations

import attrs

__all__ = ["Outcome", "Ready", "TimedOut"]


@attrs.frozen(slots=True)
class Ready:
    """The readiness check passed after ``attempts`` attempts."""

    attempts: int


@attrs.frozen(slots=True)
class TimedOut:
    """The budget ran out before the check passed."""

    attempts: int


Outcome = Ready | TimedOut
