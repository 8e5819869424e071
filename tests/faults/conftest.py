"""Every fault test tags its processes with a fresh marker and ends with none of them alive."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psutil
import pytest

from tests.helpers import wait_until

#: The environment variable the fault tests tag their services with (besides mirakuru's own).
MARK = "MIRAKURU_FAULT_MARK"
#: How long a killed process may take to vanish in the fixture's last-resort cleanup.
SETTLE = 5.0


def alive_with(mark: str) -> list[psutil.Process]:
    """Live processes (zombies do not count) whose environment carries exactly ``mark``."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(MARK) == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    """A fresh marker; at teardown no process carrying it may be alive (killed if so)."""
    value = f"fault-{uuid.uuid4()}"
    yield value
    leaked = alive_with(value)
    for process in leaked:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(leaked, timeout=SETTLE)
    assert not leaked, f"processes outlived the test: {[p.pid for p in leaked]}"


@pytest.fixture
def gone() -> Callable[[str, float], bool]:
    """``gone(mark, timeout)``: wait (bounded) until nothing carrying ``mark`` is alive."""

    def check(value: str, timeout: float) -> bool:
        return wait_until(lambda: not alive_with(value), timeout)

    return check
