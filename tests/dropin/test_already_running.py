"""AlreadyRunning names the process that holds the port."""

from __future__ import annotations

import gc
import os
import pickle
import socket
import warnings
from collections.abc import Iterator

import pytest

from mirakuru import AlreadyRunning, HTTPExecutor, TCPExecutor
from mirakuru.adapter.readiness.listeners import UNKNOWN, describe_listener
from tests.helpers import python_command


@pytest.fixture
def occupied() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port: int = server.getsockname()[1]
        yield port


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_already_running_names_pid_and_command(occupied: int, kind: str) -> None:
    command = python_command("pass")
    executor = (
        TCPExecutor(command, host="127.0.0.1", port=occupied, timeout=5)
        if kind == "tcp"
        else HTTPExecutor(command, f"http://127.0.0.1:{occupied}/", timeout=5)
    )
    with pytest.raises(AlreadyRunning) as raised:
        executor.start()
    message = str(raised.value)
    assert message.startswith(f"Executor {executor} seems to be already running.")
    assert f"held by PID {os.getpid()} (" in message
    assert executor.process is None
    again = pickle.loads(pickle.dumps(raised.value))  # noqa: S301 - our own bytes
    assert again.holder == raised.value.holder


def test_nobody_visible_is_unknown() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free: int = probe.getsockname()[1]
    assert describe_listener(free) == UNKNOWN


def test_naming_the_holder_closes_what_it_opens(occupied: int) -> None:
    """AlreadyRunning under warnings-as-errors: looking up the holder leaks no directory handle."""
    executor = TCPExecutor(python_command("pass"), host="127.0.0.1", port=occupied, timeout=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(AlreadyRunning):
            executor.start()
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
