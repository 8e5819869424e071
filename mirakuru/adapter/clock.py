"""The one clock the library reads: monotonic, so wall-clock jumps never shift a deadline."""

from __future__ import annotations

import time

__all__ = ["monotonic"]

monotonic = time.monotonic
