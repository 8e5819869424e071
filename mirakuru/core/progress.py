"""When a long start-up says that it is still waiting: after a few seconds, then now and then.

The facade reads the two module constants at each check, so a test may lower them.
"""

from __future__ import annotations

import math

__all__ = ["FIRST_REPORT", "REPORT_EVERY", "next_report", "reports_due"]

#: Seconds of waiting before the first "still not ready" report.
FIRST_REPORT = 5.0
#: Seconds between the later reports.
REPORT_EVERY = 30.0


def reports_due(waited: float, first: float | None = None, every: float | None = None) -> int:
    """How many reports a wait of ``waited`` seconds has earned so far.

    A caller that made fewer reports makes one more (only one, however many it missed: a
    check that blocked a long time must not be followed by a burst of lines).
    """
    first = FIRST_REPORT if first is None else first
    every = REPORT_EVERY if every is None else every
    if not waited >= first:
        return 0
    if not every > 0 or math.isinf(waited):
        return 1
    return 1 + int((waited - first) // every)


def next_report(reported: int, first: float | None = None, every: float | None = None) -> float:
    """How long a wait that made ``reported`` reports waits before the next one is due (the
    least ``waited`` for which :func:`reports_due` exceeds ``reported``; infinite if never)."""
    first = FIRST_REPORT if first is None else first
    every = REPORT_EVERY if every is None else every
    if reported <= 0:
        return first
    if not every > 0:
        return math.inf
    return first + reported * every
