"""``mirakuru wait``: wait for a service something else started, like wait-for-it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.cli.support import run_cli
from tests.helpers import free_port


@pytest.fixture
def listening() -> Iterator[int]:
    """A port with a listening socket on 127.0.0.1, open for the whole test."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


class TestWait:
    """Exit 0 when ready, 3 with a clear message on timeout."""

    def test_ready(self, listening: int) -> None:
        """A listening port makes wait exit 0 and say so."""
        finished = run_cli("wait", "--tcp", f"127.0.0.1:{listening}", "--timeout", "10")
        assert finished.returncode == 0, finished.stderr
        assert "ready after" in finished.stderr

    def test_timeout(self) -> None:
        """A port nobody listens on makes wait exit 3 and name what it waited for."""
        port = free_port()
        finished = run_cli("wait", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.2")
        assert finished.returncode == 3
        assert "not ready after 0.2 s" in finished.stderr
        assert str(port) in finished.stderr

    def test_all_options_must_hold(self, listening: int, tmp_path: object) -> None:
        """With several options, one that never holds is enough to time out."""
        finished = run_cli(
            "wait",
            "--tcp",
            f"127.0.0.1:{listening}",
            "--pid-file",
            f"{tmp_path}/never",
            "--timeout",
            "0.2",
        )
        assert finished.returncode == 3

    def test_json(self, listening: int) -> None:
        """--json gives the outcome, the attempts and the time it took."""
        finished = run_cli("wait", "--json", "--tcp", f"127.0.0.1:{listening}")
        result = json.loads(finished.stdout)
        assert result["action"] == "wait"
        assert result["result"] == "ready"
        assert result["exit_code"] == 0
        assert result["attempts"] >= 1
        assert result["duration"] >= 0
        assert "tcp" in result["probe"]
