"""``mirakuru wait``: wait for a service something else started, like wait-for-it."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cli.support import CLI_LIMIT, run_cli, start_cli
from tests.helpers import PYTHON, free_port


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

    def test_one_attempt_is_singular(self, listening: int) -> None:
        """A service ready at the first check is "1 attempt", not "1 attempts"."""
        finished = run_cli("wait", "--tcp", f"127.0.0.1:{listening}")
        assert "(1 attempt)" in finished.stderr, finished.stderr

    def test_tcp_scheme_is_accepted(self, listening: int) -> None:
        """dockerize's spelling, tcp://HOST:PORT, means HOST:PORT."""
        finished = run_cli("wait", "--tcp", f"tcp://127.0.0.1:{listening}", "--timeout", "10")
        assert finished.returncode == 0, finished.stderr
        assert f"tcp 127.0.0.1:{listening}" in finished.stderr

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


class TestWaitThenCommand:
    """``wait [readiness] -- COMMAND ARGS...`` runs COMMAND once ready, like wait-for-it."""

    def test_exit_status_is_the_commands(self, listening: int) -> None:
        """COMMAND runs (without a shell) once ready; its status is wait's."""
        script = "import sys; print('ran', sys.argv[1:]); sys.exit(7)"
        finished = run_cli(
            "wait", "--tcp", f"127.0.0.1:{listening}", "--", PYTHON, "-c", script, "a b", "$HOME"
        )
        assert finished.returncode == 7, finished.stderr
        assert finished.stdout == "ran ['a b', '$HOME']\n"
        assert "ready after" in finished.stderr

    def test_signal_is_128_plus(self, listening: int) -> None:
        """A COMMAND ended by signal N gives 128+N, as a shell reports it."""
        kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        finished = run_cli("wait", "--tcp", f"127.0.0.1:{listening}", "--", PYTHON, "-c", kill_self)
        assert finished.returncode == 128 + signal.SIGKILL

    def test_not_ready_never_runs_it(self, tmp_path: Path) -> None:
        """Not ready in time: status 3, and COMMAND is not run."""
        marker = tmp_path / "ran"
        finished = run_cli(
            "wait",
            "--tcp",
            f"127.0.0.1:{free_port()}",
            "--timeout",
            "0.2",
            "--",
            PYTHON,
            "-c",
            f"open({str(marker)!r}, 'w')",
        )
        assert finished.returncode == 3
        assert not marker.exists()

    @pytest.mark.parametrize(
        ("program", "status", "why"),
        [("no-such-mirakuru-program", 127, "not found"), ("data.txt", 126, "not executable")],
    )
    def test_unrunnable_is_said_before_waiting(
        self, program: str, status: int, why: str, tmp_path: Path
    ) -> None:
        """A COMMAND that cannot run fails at once with the shell's status, not after --timeout."""
        if program == "data.txt":
            (tmp_path / program).write_text("not a program\n")
            program = str(tmp_path / program)
        began = time.monotonic()
        finished = run_cli("wait", "--tcp", f"127.0.0.1:{free_port()}", "--", program)
        assert finished.returncode == status
        assert f"cannot run {program}: {why}" in finished.stderr
        assert time.monotonic() - began < 20  # the default --timeout is 60 s

    def test_json(self, listening: int) -> None:
        """--json: stdout is the document alone; COMMAND's stdout goes to stderr."""
        finished = run_cli(
            "wait", "--json", "--tcp", f"127.0.0.1:{listening}", "--", "sh", "-c", "echo hi; exit 3"
        )
        result = json.loads(finished.stdout)
        assert finished.returncode == 3
        assert result["exit_code"] == 3
        assert result["result"] == "then"
        assert result["then"]["exit_code"] == 3
        assert result["then"]["command"] == "sh -c 'echo hi; exit 3'"
        assert "hi" in finished.stderr

    def test_sigterm_ends_the_command_too(self, listening: int) -> None:
        """SIGTERM to wait while COMMAND runs ends COMMAND as well, and exits 128+15."""
        script = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
        cli = start_cli("wait", "--tcp", f"127.0.0.1:{listening}", "--", PYTHON, "-c", script)
        command = None
        try:
            assert cli.stdout is not None
            command = psutil.Process(int(cli.stdout.readline()))
            cli.send_signal(signal.SIGTERM)
            cli.communicate(timeout=CLI_LIMIT)
            assert cli.returncode == 128 + signal.SIGTERM
            assert psutil.wait_procs([command], timeout=5)[1] == []
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.communicate()
            if command is not None and command.is_running():
                command.kill()
