"""Services for the async tests: ready after a chosen delay, by banner or by port."""

from __future__ import annotations

from mirakuru import SimpleExecutor, State
from tests.helpers import python_command

__all__ = ["banner_after", "ignores_term", "listens_after", "state"]


def state(executor: SimpleExecutor) -> State:
    """The executor's state (read through a call: each read is a new fact to mypy)."""
    return executor.state


def banner_after(delay: float, banner: str = "ready") -> list[str]:
    """Prints ``banner`` after ``delay`` seconds, then waits to be stopped."""
    return python_command(
        f"import time\ntime.sleep({delay!r})\nprint({banner!r}, flush=True)\ntime.sleep(120)\n"
    )


def listens_after(delay: float, port: int) -> list[str]:
    """Listens on 127.0.0.1:``port`` after ``delay`` seconds, then waits to be stopped."""
    return python_command(
        "import socket, time\n"
        f"time.sleep({delay!r})\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "time.sleep(120)\n"
    )


def ignores_term(banner: str = "ready") -> list[str]:
    """Prints ``banner`` and ignores SIGTERM (only the kill signal ends it)."""
    return python_command(
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"print({banner!r}, flush=True)\n"
        "time.sleep(120)\n"
    )
