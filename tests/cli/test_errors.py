"""The five commonest failures, each said once in words a shell user reads."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import lines, run_cli, tcp_server
from tests.helpers import PYTHON


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


class TestCommonFailures:
    """Missing program, exit before ready, timeout, port taken, bad option."""

    def test_missing_program(self) -> None:
        """A program that does not exist is named with the reason, exit status 4."""
        finished = run_cli("run", "--tcp", "127.0.0.1:{port}", "--", "no-such-mirakuru-program")
        assert finished.returncode == 4
        assert "cannot run no-such-mirakuru-program: No such file or directory" in finished.stderr
        assert "<mirakuru" not in finished.stderr

    def test_exit_before_ready(self) -> None:
        """A service that exits at once: its name and status; its output, copied live, once."""
        script = "import sys; print('bad directive', file=sys.stderr); sys.exit(1)"
        finished = run_cli("run", "--output", "READY", "--", PYTHON, "-c", script)
        assert finished.returncode == 4
        assert lines(finished.stderr)[1:] == [
            "bad directive",
            f"mirakuru: {Path(PYTHON).name} exited with status 1 before it was ready",
        ]
        assert "output ended" not in finished.stderr
        assert "executor" not in finished.stderr

    def test_exit_before_ready_hidden_output(self) -> None:
        """With --hide-output, the last output is shown once, under the error."""
        script = "import sys; print('bad directive', file=sys.stderr); sys.exit(1)"
        finished = run_cli("run", "--hide-output", "--output", "READY", "--", PYTHON, "-c", script)
        assert finished.returncode == 4
        assert lines(finished.stderr)[1:] == [
            f"mirakuru: {Path(PYTHON).name} exited with status 1 before it was ready; last output:",
            "    [stderr] bad directive",
        ]

    def test_timeout_shows_output_once(self) -> None:
        """A service that never gets ready: what it printed appears once, before the error."""
        script = (
            "import sys, time; print('still', 'booting', file=sys.stderr, flush=True);"
            " time.sleep(60)"
        )
        finished = run_cli(
            "run", "--timeout", "0.5", "--output", "READY", "--", PYTHON, "-c", script
        )
        assert finished.returncode == 3
        assert finished.stderr.count("still booting") == 1, finished.stderr
        assert lines(finished.stderr)[-1].startswith("mirakuru: not ready after 0.5 s")

    def test_timeout(self) -> None:
        """Not ready in time: how long, and what was waited for."""
        finished = run_cli(
            "run", "--timeout", "0.3", "--tcp", "127.0.0.1:{port}", "--", "sleep", "60"
        )
        assert finished.returncode == 3
        assert "mirakuru: not ready after 0.3 s: tcp 127.0.0.1:" in finished.stderr
        assert "tcp(" not in finished.stderr

    def test_port_taken(self, taken_port: int) -> None:
        """Something already answers on the port: said before the service starts."""
        finished = run_cli(
            "run", "--tcp", f"127.0.0.1:{taken_port}", "--", *tcp_server(str(taken_port))
        )
        assert finished.returncode == 4
        assert f"tcp 127.0.0.1:{taken_port} already answers" in finished.stderr
        assert "taken" in finished.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["run", "--bogus", "--", "true"],
                "mirakuru run: error: unrecognized arguments: --bogus",
            ),
            (
                ["run", "--unix-socket", "", "--", "true"],
                "mirakuru run: error: --unix-socket: must",
            ),
            (
                ["run", "--http", "ftp://x/", "--", "true"],
                "mirakuru run: error: --http: must start",
            ),
            (["run", "--status", "(", "--http", "http://x/", "--", "true"], "error: --status: "),
            (["wait", "--output", "READY"], "--output works with 'mirakuru run' only"),
            (["wait", "--notify"], "--notify works with 'mirakuru run' only"),
        ],
    )
    def test_bad_option(self, args: list[str], message: str) -> None:
        """The error names the option as typed, not a Python parameter."""
        finished = run_cli(*args)
        assert finished.returncode == 2
        assert message in finished.stderr
        assert "socket_name" not in finished.stderr
        assert "url " not in finished.stderr


class TestJsonWithThen:
    """With --json, stdout is the JSON document alone; --then's stdout goes to stderr."""

    def test_stdout_parses(self) -> None:
        """The --then command's output does not get in the way of the JSON."""
        finished = run_cli(
            "run",
            "--json",
            "--tcp",
            "127.0.0.1:{port}",
            "--then",
            "echo from-then",
            "--",
            *tcp_server(),
        )
        assert finished.returncode == 0, finished.stderr
        result = json.loads(finished.stdout)
        assert result["then"]["exit_code"] == 0
        assert "from-then" in finished.stderr

    def test_service_status_uses_128_plus_signal(self) -> None:
        """A service stopped by SIGTERM is reported as 143, as a shell would."""
        finished = run_cli(
            "run", "--json", "--tcp", "127.0.0.1:{port}", "--then", "true", "--", *tcp_server()
        )
        result = json.loads(finished.stdout)
        assert result["service_exit_status"] == 143
        assert result["stop_duration"] >= 0


class TestSmallTruths:
    """Messages claim only what happened."""

    def test_no_readiness_option_claims_no_readiness(self) -> None:
        """Without a readiness option the service is started, not 'ready'."""
        finished = run_cli("run", "--then", "true", "--", "sleep", "60")
        assert finished.returncode == 0
        assert "ready after" not in finished.stderr
        assert "no readiness option" in finished.stderr
        assert "stopped sleep and its child processes in" in finished.stderr
