"""Small tools shared by the tests: free ports, bounded polling, finding our processes."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

import psutil
import pytest

from mirakuru.base import ENV_UUID, SimpleExecutor

__all__ = [
    "PYTHON",
    "free_port",
    "marked_processes",
    "processes_with_token_prefix",
    "python_command",
    "wait_until",
]

#: The interpreter running the tests, for child scripts that behave exactly as needed.
PYTHON = sys.executable


def python_command(source: str) -> list[str]:
    """A command that runs ``source`` in a fresh interpreter."""
    return [PYTHON, "-c", source]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; no fixed ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` cheaply until it holds or ``timeout`` passes; its last verdict.

    For external conditions only (a file appearing, a process vanishing): the wait is
    bounded and ends as soon as the condition holds, so it never stands in for a sleep.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _marker(process: psutil.Process) -> str | None:
    try:
        return process.environ().get(ENV_UUID)
    except (psutil.Error, OSError):
        return None  # gone, a zombie, or not ours to read


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_with_token_prefix(prefix: str) -> list[psutil.Process]:
    """Live processes whose marker starts with ``prefix`` (zombies do not count)."""
    me = os.getpid()
    found = []
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        marker = _marker(process)
        if marker is not None and marker.startswith(prefix) and _alive(process):
            found.append(process)
    return found


def marked_processes(executor: SimpleExecutor) -> list[psutil.Process]:
    """Live processes carrying exactly ``executor``'s marker."""
    return [
        process
        for process in processes_with_token_prefix(executor._uuid)
        if _marker(process) == executor._uuid
    ]


def _watchdog_can_pin() -> bool:
    from mirakuru.adapter.capabilities import capabilities

    return capabilities().pidfd


#: For tests of what the watchdog does once the owner was SIGKILLed: it kills only what it
#: has pinned, and pinning needs pidfds (Linux). In portable mode (and on macOS and the
#: BSDs) the services of an owner killed that way are left running; a normal exit or
#: SIGTERM still stops them through the exit hook.
needs_watchdog_pins = pytest.mark.skipif(
    not _watchdog_can_pin(),
    reason="needs pidfds (Linux): the watchdog kills only the processes it has pinned",
)
