"""Assert an executor's lifecycle against a compact path: ``"idle → starting → running"``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mirakuru.base import SimpleExecutor
from mirakuru.core.lifecycle import State, StateChange, Trigger
from mirakuru.core.simulation import SimulatedStart

__all__ = ["assert_lifecycle", "lifecycle_path"]

#: What a path may separate its states with.
_ARROW = re.compile(r"\s*(?:→|->)\s*")
_STATES = {state.value: state for state in State}

History = SimpleExecutor | SimulatedStart | Iterable[StateChange]


def _changes(subject: History) -> tuple[StateChange, ...]:
    if isinstance(subject, SimpleExecutor | SimulatedStart):
        return tuple(subject.history)
    return tuple(subject)


def _states(subject: History) -> list[State]:
    changes = [change for change in _changes(subject) if change.trigger is not Trigger.NOTIFY]
    if not changes:
        return [subject.state] if isinstance(subject, SimpleExecutor) else []
    return [changes[0].source, *(change.dest for change in changes)]


def lifecycle_path(subject: History) -> str:
    """The states ``subject`` went through, as ``"idle → starting → running"``.

    ``subject`` is an executor, a :class:`~mirakuru.core.simulation.SimulatedStart` or a
    sequence of :class:`~mirakuru.StateChange`; notes (sd_notify statuses) are left out.
    An executor with no history yet is just its state.
    """
    return " → ".join(state.value for state in _states(subject))


def _parse(expected: str) -> list[State]:
    if not isinstance(expected, str):
        raise TypeError(f"expected must be a path such as 'idle → starting', got {expected!r}")
    names = [name for name in _ARROW.split(expected.strip()) if name] if expected.strip() else []
    unknown = [name for name in names if name.lower() not in _STATES]
    if unknown:
        raise ValueError(
            f"unknown state {unknown[0]!r} in the expected path {expected!r}; "
            f"states are: {', '.join(_STATES)}"
        )
    return [_STATES[name.lower()] for name in names]


def assert_lifecycle(subject: History, expected: str) -> None:
    """Fail unless ``subject`` went exactly through the states of ``expected``.

    ``expected`` names states separated by ``→`` (or ``->``), oldest first:
    ``"idle → starting → running → stopping → stopped"``. On a difference, the
    :class:`AssertionError` shows both paths, marks where they part, and lists the
    history with its details (exit codes, escalations, timeouts) and times.
    """
    __tracebackhide__ = True  # pytest: report the caller's line, not this one
    want = _parse(expected)
    got = _states(subject)
    if got == want:
        return
    raise AssertionError(_explain(want, got, _changes(subject)))


def _explain(want: list[State], got: list[State], changes: tuple[StateChange, ...]) -> str:
    step = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a is not b),
        min(len(want), len(got)),
    )
    expected_line = " → ".join(state.value for state in want) or "(nothing)"
    actual_line = " → ".join(state.value for state in got) or "(no history)"
    column = len(" → ".join(state.value for state in got[:step])) + (3 if step else 0)
    if step < len(got):
        width = len(got[step].value)
        marker = " " * column + "^" * width
        if step < len(want):
            why = f"expected {want[step].value}, got {got[step].value}"
        else:
            why = f"expected the path to end before {got[step].value}"
    else:
        marker = " " * max(0, len(actual_line) + 1) + "^"
        why = f"the path ends where {want[step].value} was expected"
    lines = [
        f"lifecycle differs at state {step + 1}: {why}",
        f"  expected: {expected_line}",
        f"  actual:   {actual_line}",
        f"            {marker}",
    ]
    if changes:
        began = changes[0].at
        lines.append("history:")
        lines.extend(f"  {change.at - began:>+12.6f} s  {change}" for change in changes)
    return "\n".join(lines)
