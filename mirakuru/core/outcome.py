"""What a wait ended with, as values the facade turns into transitions and errors."""

from __future__ import annotations

import attrs

__all__ = ["Exited", "Outcome", "Ready", "TimedOut"]


@attrs.frozen(slots=True)
class Ready:
    """The readiness check passed after ``attempts`` attempts."""

    attempts: int


@attrs.frozen(slots=True)
class Exited:
    """The process exited before it was ready, with this return code."""

    returncode: int


@attrs.frozen(slots=True)
class TimedOut:
    """The budget ran out before the check passed."""

    attempts: int


Outcome = Ready | Exited | TimedOut
