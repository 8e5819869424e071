"""Platform constants kept at their published import path."""

from __future__ import annotations

import signal

__all__ = ["SIGKILL"]

#: The signal that cannot be ignored.
SIGKILL = signal.SIGKILL
