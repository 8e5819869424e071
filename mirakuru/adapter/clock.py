"""The one clock the library reads: monotonic, so wall-clock jumps never shift a deadline."""

from __future__ import annotations

import time

__all__ = ["LONGEST_WAIT", "monotonic", "wait_slice"]

monotonic = time.monotonic

#: The longest one blocking call is asked to wait, in seconds: ``poll()`` takes at most
#: 2**31-1 ms and thread waits overflow on huge values, so a loop that re-checks its own
#: deadline waits out a longer (or infinite) limit in slices of this.
LONGEST_WAIT = 86400.0


def wait_slice(seconds: float) -> float:
    """``seconds`` made safe for one blocking call: at least 0, at most :data:`LONGEST_WAIT`."""
    return min(max(0.0, seconds), LONGEST_WAIT)
