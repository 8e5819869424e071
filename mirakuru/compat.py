"""Platform constants at their published import path, importable on every system.

They live in :mod:`mirakuru.adapter.posix`, below the facade, so that the adapter can use
them without importing up a layer.
"""

from __future__ import annotations

from mirakuru.adapter.posix import (
    SIGKILL,
    UnsupportedPlatform,
    check_platform,
    missing_platform_support,
)

__all__ = ["SIGKILL", "UnsupportedPlatform", "check_platform", "missing_platform_support"]
