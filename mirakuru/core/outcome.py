"""What a wait ended with, as values the facade turns into transitions and errors.

A process that exits while we wait is not an outcome of its own: its exit wakes the wait at
once, and the overridable ``check_subprocess()`` decides what that exit means.
"""

from __future__ import annotations

import attrs

__all__ = [
    "Outcome",
    "Ready",
    "TimedOut",
    "exited_note",
    "launcher_exit_note",
    "left_nothing_note",
    "output_ended_note",
    "timed_out_note",
]


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


def launcher_exit_note(pid: int | None, left: bool) -> str:
    """The history note of the leader exiting 0 before readiness; ``left``: its processes
    live on (a launcher that daemonized). ``pid`` None: not known (a simulation)."""
    who = "the process" if pid is None else f"PID {pid}"
    what = "its processes live on" if left else "it left nothing running"
    return f"{who} exited with status 0; {what}"


def left_nothing_note() -> str:
    """The history note of a start failed by a leader that exited 0 leaving nothing."""
    return "exited with status 0 and left nothing running"
