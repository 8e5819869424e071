"""Child programs the executor tests run: tiny Python scripts with exactly one behaviour."""

from __future__ import annotations

from tests.helpers import python_command

__all__ = [
    "exits_with",
    "prints_then_marks",
    "sleeper",
    "touches_then_sleeps",
    "writes_exit_instant",
]


def sleeper(seconds: int = 60) -> list[str]:
    """A process that does nothing until signalled (SIGTERM kills it: exit code -15)."""
    return ["sleep", str(seconds)]


def exits_with(code: int, message: str = "") -> list[str]:
    """A process that prints ``message`` on both streams and exits with ``code`` at once."""
    return python_command(
        "import sys\n"
        f"print({message!r}, flush=True)\n"
        f"print({message!r}, file=sys.stderr, flush=True)\n"
        f"sys.exit({code})\n"
    )


def touches_then_sleeps(path: str) -> list[str]:
    """A service that becomes "ready" by creating ``path``, then waits to be stopped."""
    return python_command(f"import time\nopen({path!r}, 'w').close()\ntime.sleep(60)\n")


def prints_then_marks(size: int, marker: str) -> list[str]:
    """Prints ``size`` bytes in lines, then creates ``marker``, then waits to be stopped.

    A child that blocks on a full, undrained pipe never reaches the marker.
    """
    return python_command(
        "import sys, time\n"
        "line = 'x' * 99 + '\\n'\n"
        f"for _ in range({size} // 100):\n"
        "    sys.stdout.write(line)\n"
        "sys.stdout.flush()\n"
        f"open({marker!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )


def writes_exit_instant(path: str) -> list[str]:
    """On SIGTERM, records CLOCK_MONOTONIC to ``path`` and exits 0 (for stop latency)."""
    return python_command(
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    with open({path!r}, 'w') as f:\n"
        "        f.write(repr(time.clock_gettime(time.CLOCK_MONOTONIC)))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    time.sleep(60)\n"
    )
