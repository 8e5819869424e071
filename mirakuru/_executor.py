"""Facade-side helpers for :mod:`mirakuru.base`: translating the published arguments."""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from mirakuru.adapter.clock import monotonic
from mirakuru.core.budget import Budget
from mirakuru.core.schedule import MAX_AUTO_CAP

__all__ = [
    "DEFAULT_SLEEP",
    "PopenSettings",
    "budget_at_wall_time",
    "check_signal",
    "legacy_timeout",
    "merge_popen_kwargs",
    "operation_began",
    "operation_depth",
    "operation_ended",
    "postpone",
    "wall_deadline",
]

LOG = logging.getLogger("mirakuru.base")


class _DefaultSleep(float):
    """The default ``sleep``: a float, but recognisably not one the user chose."""

    def __repr__(self) -> str:
        return repr(float(self))


#: When ``sleep`` is left at this default, polling is adaptive (about 1 ms to 4 ms for
#: cheap checks); an explicit ``sleep`` becomes the longest interval between checks.
DEFAULT_SLEEP = _DefaultSleep(MAX_AUTO_CAP)


def check_signal(name: str, value: object) -> int:
    """``value`` as a signal number, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a signal number, got {value!r}")
    try:
        return int(signal.Signals(value))
    except ValueError:
        raise ValueError(f"{name} must be a valid signal number, got {value!r}") from None


def legacy_timeout(timeout: float | None, stacklevel: int) -> float | None:
    """mirakuru 3.1 took any true value: keep True meaning one second, but say so."""
    given: object = timeout  # typed float, but mirakuru 3.1 callers pass True
    if given is not True:
        return timeout
    warnings.warn(
        "timeout=True is deprecated; pass a number of seconds (True means 1)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return 1


def merge_popen_kwargs(own: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The user's extra Popen arguments, never overriding what the executor relies on
    (pipes, text mode, marker, directory)."""
    own.update((key, value) for key, value in extra.items() if key not in own)
    return own


def wall_deadline(budget: Budget | None) -> float | None:
    """A budget's deadline as a wall-clock time (``time.time()``), or None."""
    if budget is None or budget.deadline is None:
        return None
    # Not clamped at zero: a passed deadline must stay in the past, not follow "now".
    return time.time() + (budget.deadline - monotonic())


def budget_at_wall_time(value: float | None) -> Budget | None:
    """The budget ending at wall-clock time ``value`` (None: no budget)."""
    return None if value is None else Budget(monotonic() + (value - time.time()))


@attrs.frozen
class PopenSettings:
    """The published Popen-related arguments, kept as one value (an executor with more
    than 30 attributes loses CPython's shared-key dict, about 1.3 KB each)."""

    shell: bool
    stdin: Any
    stdout: Any
    stderr: Any
    extra: Mapping[str, Any]


class _Operations(threading.local):
    """This thread's public operations in progress (start, stop, kill), outermost first."""

    depth = 0
    #: A BaseException a state listener raised, held until the outermost operation ends.
    postponed: BaseException | None = None


_OPERATIONS = _Operations()


def operation_depth() -> int:
    """How many public operations run on this thread (0: none)."""
    return _OPERATIONS.depth


def operation_began(outer: int) -> None:
    """An operation begins inside ``outer`` others (call it inside the operation's try)."""
    _OPERATIONS.depth = outer + 1


def operation_ended(outer: int, failing: BaseException | None = None) -> None:
    """The operation begun inside ``outer`` others ended (raising ``failing``, if given);
    the outermost one raises what a listener raised meanwhile. Safe to call twice."""
    _OPERATIONS.depth = outer
    postponed = _OPERATIONS.postponed
    if outer > 0 or postponed is None:
        return
    _OPERATIONS.postponed = None
    if failing is None or isinstance(failing, Exception):
        raise postponed  # a listener's pytest.fail() or sys.exit() outranks our own errors
    LOG.error("a state listener raised %r while %r was propagating", postponed, failing)


def postpone(error: BaseException) -> bool:
    """Hold a listener's ``error`` until the current operation has finished its work.

    False when no operation runs on this thread (the reactor's): nobody would raise it.
    """
    if _OPERATIONS.depth == 0:
        return False
    if _OPERATIONS.postponed is None:
        _OPERATIONS.postponed = error
    return True
