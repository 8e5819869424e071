"""``mirakuru run`` with launchers that exit 0, and failures that say what was missing."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess

import pytest

from mirakuru.adapter.capabilities import capabilities
from tests.cli.support import CLI_LIMIT, assert_nothing_left, run_cli, start_cli
from tests.helpers import PYTHON, free_port, wait_until

#: A launcher that forks a listener on argv[1] and exits 0 at once. With argv[2] == "once"
#: the listener exits after its first connection (the readiness probe's).
LAUNCHER = """
import os, socket, sys, time
if os.fork() == 0:
    server = socket.socket()
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen()
    if sys.argv[2] == "once":
        server.accept()
        os._exit(0)
    time.sleep(60)
    os._exit(0)
"""

#: How long a CLI that should keep serving is watched for an early exit.
STILL_SERVING = 1.0


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _serve_then_interrupt(port: int, *command: str) -> subprocess.Popen[str]:
    """Start ``run`` on ``command``; once ready, check it keeps serving, then Ctrl-C it."""
    cli = start_cli("run", "--tcp", f"127.0.0.1:{port}", "--", *command)
    try:
        assert cli.stderr is not None
        for line in cli.stderr:
            if line.startswith("mirakuru: ready"):
                break
        else:
            pytest.fail("mirakuru never reported the service ready")
        with pytest.raises(subprocess.TimeoutExpired):
            cli.wait(STILL_SERVING)  # it must not stop what its launcher left running
        assert _answers(port)
        cli.send_signal(signal.SIGINT)
        cli.communicate(timeout=CLI_LIMIT)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    return cli


class TestLauncherExitsZero:
    """The service is what the launcher left running: serve it, stop it on a signal."""

    def test_forked_service_is_served(self) -> None:
        """Exit 0 with a child serving: run keeps going until Ctrl-C, then exits 0."""
        port = free_port()
        cli = _serve_then_interrupt(port, PYTHON, "-c", LAUNCHER, str(port), "forever")
        assert cli.returncode == 0
        assert_nothing_left(cli.pid)
        assert wait_until(lambda: not _answers(port), 10.0)

    @pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
    @pytest.mark.skipif(not capabilities().cgroup, reason="a daemonized redis escapes stop()")
    def test_daemonized_redis(self) -> None:
        """redis-server --daemonize yes: served, and stopped (through its cgroup) on Ctrl-C."""
        port = free_port()
        command = ("redis-server", "--port", str(port), "--daemonize", "yes", "--save", "")
        cli = _serve_then_interrupt(port, *command)
        assert cli.returncode == 0
        assert wait_until(lambda: not _answers(port), 10.0)

    def test_the_end_of_what_it_left_is_reported(self) -> None:
        """Once nothing of the service is left, run says so and exits 5."""
        port = free_port()
        finished = run_cli(
            "run", "--tcp", f"127.0.0.1:{port}", "--", PYTHON, "-c", LAUNCHER, str(port), "once"
        )
        assert finished.returncode == 5, finished.stderr
        assert "exited on its own with status 0" in finished.stderr

    def test_nothing_left_fails_at_once(self) -> None:
        """Exit 0 leaving nothing: status 4 at once, not a 60 s wait."""
        finished = run_cli("run", "--tcp", "127.0.0.1:{port}", "--", PYTHON, "-c", "print('bye')")
        assert finished.returncode == 4, finished.stderr
        assert "exited with status 0 and left nothing running" in finished.stderr
        assert "bye" in finished.stderr


class TestNotReady:
    """A timeout names the probe that was not satisfied and its last result."""

    def test_message(self) -> None:
        """The error line says what the last attempt found."""
        finished = run_cli(
            "run", "--timeout", "0.3", "--tcp", "127.0.0.1:{port}", "--", "sleep", "60"
        )
        assert finished.returncode == 3
        assert "not ready after 0.3 s: tcp 127.0.0.1:" in finished.stderr
        assert ": connection refused (" in finished.stderr

    def test_json(self) -> None:
        """--json carries it as ``not_ready``."""
        finished = run_cli(
            "run", "--json", "--timeout", "0.3", "--tcp", "127.0.0.1:{port}", "--", "sleep", "60"
        )
        result = json.loads(finished.stdout)
        assert result["result"] == "timeout"
        assert result["not_ready"].startswith(
            f"tcp 127.0.0.1:{result['port']}: connection refused ("
        )
