"""What a wait ended with, as values the facade turns into transitions and errors.

A process that exits while we wait is not an outcome of its own: its exit wakes the wait at
once, and the overridable ``check_subprocess()`` decides what that exit means.
"""

from __future__ import annotations

import attrs

__all__ = ["Outcome", "Ready", "TimedOut", "exited_note", "output_ended_note", "timed_out_note"]


@attrs.frozen(slots=True)
class Ready:
    """The readiness check passed after ``attempts`` attempts."""

    attempts: int


@attrs.frozen(slots=True)
class TimedOut:
    """The budget ran out before the check passed."""

    attempts: int


Outcome = Ready | TimedOut


# The notes a failed start leaves in the state history, worded once for the executors and
# for the simulation that predicts their history.


def timed_out_note(timeout: float | None) -> str:
    """The history note of a start that ran out of its ``timeout``."""
    return f"timed out after {timeout} s"


def exited_note(exit_code: int) -> str:
    """The history note of a start cut short by the process exiting with ``exit_code``."""
    return f"exited with code {exit_code}"


def output_ended_note(exit_code: int | None) -> str:
    """The history note of a start whose output ended before its banner appeared."""
    return f"output ended without the banner (exit code {exit_code})"
