"""What a start-up waits for: its checks counted, its progress reported, its timeout.

A mixin of :class:`~mirakuru.base.SimpleExecutor`. A wait whose check keeps failing says,
after a few seconds and then now and then (:mod:`mirakuru.core.progress`), what is still
missing, on the ``mirakuru`` logger and to the ``_on_progress`` hook (the pytest plugin's
terminal line); the :class:`~mirakuru.exceptions.TimeoutExpired` at the deadline names it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from mirakuru.adapter.clock import monotonic
from mirakuru.core import progress
from mirakuru.core.outcome import timed_out_note
from mirakuru.core.unmet import attempts_phrase
from mirakuru.exceptions import TimeoutExpired

if TYPE_CHECKING:
    from typing import Self

    from mirakuru.core.budget import Budget

__all__ = ["PROGRESS_LOG", "Waiting"]

LOG = logging.getLogger(__name__)
#: Where a long start-up says that it is still waiting.
PROGRESS_LOG = logging.getLogger("mirakuru")


class Waiting:
    """The deadline and the account of a wait's checks (class defaults: no ``__init__``)."""

    if TYPE_CHECKING:  # what the mixin uses of SimpleExecutor
        _budget: Budget | None
        _timeout: float | None
        _failure: str | None

        def output_tail(self) -> list[str]: ...
        def kill(self, wait: bool = True, sig: int | None = None) -> Self: ...

    #: Checks made by the current (or last) wait.
    _attempts: int = 0
    #: The monotonic instant at which the current wait owes its next progress report.
    _report_due: float = math.inf
    #: What that wait calls, for a message about a check we know nothing else of.
    _waiting_for: str = "the readiness check"
    #: Told ``(seconds waited, what is missing)`` whenever a long wait reports progress.
    _on_progress: Callable[[float, str], object] | None = None

    def _counted(self, wait_for: Callable[[], bool]) -> Callable[[], bool]:
        """``wait_for``, counting its calls and reporting progress when a wait runs long."""
        name = getattr(wait_for, "__qualname__", None) or repr(wait_for)
        self._waiting_for = f"{name}()"
        self._attempts = 0
        began = monotonic()
        reported = 0
        self._report_due = began + progress.next_report(0)

        def check() -> bool:
            nonlocal reported
            self._attempts += 1
            if wait_for():
                return True
            now = monotonic()
            due = progress.reports_due(now - began)
            if due > reported:
                reported = due
                self._report_progress(now - began)
            self._report_due = began + progress.next_report(reported)
            return False

        return check

    def _counted_gate(self, gate: Callable[[], bool]) -> Callable[[], bool]:
        """``gate`` (a cheap sure "not ready yet" that stands in for a check), counted as an
        attempt when it answers; when a progress report is due it leaves the round to the
        check, which makes the report."""

        def unready() -> bool:
            if monotonic() >= self._report_due or not gate():
                return False
            self._attempts += 1
            return True

        return unready

    def _report_progress(self, waited: float) -> None:
        """Say, on the ``mirakuru`` logger and to ``_on_progress``, what is still missing."""
        try:
            unmet = self._unmet()
            PROGRESS_LOG.info("%s still not ready after %.1f s: %s", self, waited, unmet)
            hook = self._on_progress
            if hook is not None:
                hook(waited, unmet)
        except Exception:  # a report must never break the start it reports on
            LOG.exception("reporting the progress of %s failed", self)

    def _unmet(self) -> str:
        """What the wait is still missing, in words (the probe and its last result)."""
        return f"{self._waiting_for} never returned True ({attempts_phrase(self._attempts)})"

    def _unmet_or_none(self) -> str | None:
        """:meth:`_unmet`, or None if describing it failed (the error at hand matters more)."""
        try:
            return self._unmet()
        except Exception:
            LOG.exception("describing what %s waited for failed", self)
            return None

    def _poll_floor(self) -> float:
        """The least pause between timed checks right now (0: as the schedule says)."""
        return 0.0

    def check_timeout(self) -> bool:
        """True while the start-up deadline has not passed; else kill and raise."""
        budget = self._budget
        if budget is None or not budget.expired(monotonic()):
            return True
        self._time_out()

    def _time_out(self) -> NoReturn:
        """Kill the process tree and raise :class:`TimeoutExpired`, saying what was missing."""
        self._failure = timed_out_note(self._timeout)
        tail = self.output_tail()
        unmet = self._unmet_or_none()
        self.kill()
        error = TimeoutExpired(self, timeout=self._timeout)  # type: ignore[arg-type]
        error.output_tail = tail
        error.unmet = unmet
        raise error
