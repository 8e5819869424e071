"""Input validation shared by the core values: errors name the field and the value."""

from __future__ import annotations

import math

__all__ = ["check_count", "check_duration", "check_positive"]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_duration(name: str, value: object, *, allow_none: bool) -> None:
    """Require a non-negative, non-NaN number of seconds (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{name} must be {expected}, got {_describe(value)}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


def check_positive(name: str, value: object) -> None:
    """Require a finite number of seconds strictly greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {_describe(value)}")
    if math.isnan(value) or value <= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def check_count(name: str, value: object) -> None:
    """Require a whole number >= 1 (a float, even a whole one, is refused: it is a unit slip)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1 or None, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
