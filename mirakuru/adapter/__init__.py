"""The effectful layer: the only code that spawns, signals, reads pipes or reads a clock.

:func:`describe_capabilities` (or ``python -m mirakuru.adapter``) shows which platform fast
paths this process uses, for bug reports.
"""

from __future__ import annotations

__all__ = ["describe_capabilities"]


def describe_capabilities() -> str:
    """A readable table of the fast paths in use here and the fallbacks taken instead."""
    import platform
    import sys

    # Imported on call so that importing the adapter package probes nothing.
    from mirakuru.adapter.capabilities import PORTABLE_ENV, capabilities
    from mirakuru.adapter.posix import missing_platform_support

    chosen = capabilities()
    table = chosen.as_table()
    width = max(len(name) for name in table)
    # kqueue is not a Linux fast path but the BSD/macOS replacement for inotify and pidfds.
    table["kqueue"] = "in use" if chosen.kqueue else "not used"
    mode = (
        f"portable ({PORTABLE_ENV} forces every fallback)"
        if chosen.portable
        else f"fast paths where they exist ({PORTABLE_ENV}=1 forces every fallback)"
    )
    lines = [
        f"mirakuru on {sys.platform} ({platform.system()} {platform.release()}), "
        f"Python {platform.python_version()}",
        f"mode: {mode}",
    ]
    lines += [f"  {name.ljust(width)}  {state}" for name, state in table.items()]
    missing = missing_platform_support()
    if missing:
        lines.append(f"unsupported platform, missing: {', '.join(missing)}")
    return "\n".join(lines)
