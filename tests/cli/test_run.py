"""``mirakuru run``: start, wait, run --then or serve, stop the whole tree."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.support import (
    CLI_LIMIT,
    assert_nothing_left,
    run_cli,
    start_cli,
    tcp_server,
)
from tests.helpers import PYTHON, free_port


class TestThen:
    """--then runs a command once the service is ready and exits with its status."""

    @pytest.mark.parametrize("status", [0, 1, 7])
    def test_exit_status_propagates(self, status: int) -> None:
        """The exit status of the --then command is mirakuru's exit status."""
        finished = run_cli(
            "run", "--tcp", "127.0.0.1:{port}", "--then", f"exit {status}", "--", *tcp_server()
        )
        assert finished.returncode == status, finished.stderr

    def test_then_reaches_the_service_on_the_chosen_port(self) -> None:
        """{port} is the same free port in the command, the probe and --then."""
        fetch = (
            f'{PYTHON} -c "import urllib.request as u;'
            " print(u.urlopen('http://127.0.0.1:{port}/').status)\""
        )
        finished = run_cli(
            "run",
            "--http",
            "http://127.0.0.1:{port}/",
            "--then",
            fetch,
            "--",
            PYTHON,
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "127.0.0.1",
        )
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.strip() == "200"

    def test_signal_killed_then_reports_128_plus_signal(self) -> None:
        """A --then command killed by a signal gives 128 + the signal number, like a shell."""
        finished = run_cli(
            "run", "--tcp", "127.0.0.1:{port}", "--then", "kill -9 $$", "--", *tcp_server()
        )
        assert finished.returncode == 128 + signal.SIGKILL


class TestStartFailures:
    """A service that cannot become ready is stopped and reported with a distinct status."""

    def test_exit_before_ready(self) -> None:
        """A service that dies at once gives status 4 and its last output lines."""
        finished = run_cli(
            "run",
            "--tcp",
            "127.0.0.1:{port}",
            "--",
            PYTHON,
            "-c",
            "import sys; print('config is broken', file=sys.stderr); sys.exit(3)",
        )
        assert finished.returncode == 4
        assert "config is broken" in finished.stderr

    def test_timeout(self) -> None:
        """A service that never answers gives status 3 once --timeout passes."""
        finished = run_cli(
            "run", "--timeout", "0.2", "--tcp", "127.0.0.1:{port}", "--", "sleep", "60"
        )
        assert finished.returncode == 3
        assert "not ready after 0.2 s" in finished.stderr

    def test_missing_executable(self) -> None:
        """A command that does not exist gives status 4 and says so."""
        finished = run_cli("run", "--tcp", "127.0.0.1:1", "--", "/nonexistent/mirakuru-test")
        assert finished.returncode == 4
        assert "/nonexistent/mirakuru-test" in finished.stderr

    def test_banner_never_printed(self) -> None:
        """Output that ends without the --output pattern fails at once, with status 4."""
        finished = run_cli("run", "--output", "^ready$", "--", PYTHON, "-c", "print('nope')")
        assert finished.returncode == 4
        assert "exited with status 0 before it was ready" in finished.stderr
        assert "output ended" not in finished.stderr
        assert "nope" in finished.stderr


class TestForeground:
    """Without --then the service runs until a signal arrives, then the tree is stopped."""

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_signal_stops_the_tree(self, sig: signal.Signals) -> None:
        """Ctrl-C or SIGTERM stops the service and its grandchild, and exits 0."""
        cli = start_cli("run", "--tcp", "127.0.0.1:{port}", "--", *tcp_server(child=True))
        try:
            assert cli.stderr is not None
            for line in cli.stderr:
                if line.startswith("mirakuru: ready"):
                    break
            else:
                pytest.fail("mirakuru never reported the service ready")
            cli.send_signal(sig)
            cli.communicate(timeout=CLI_LIMIT)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.communicate()
        assert cli.returncode == 0
        assert_nothing_left(cli.pid)

    def test_service_dying_on_its_own(self) -> None:
        """A service that exits while running gives status 5."""
        port = free_port()
        # The readiness probe's own connection is the one that makes this service exit.
        finished = run_cli(
            "run", "--tcp", f"127.0.0.1:{port}", "--", *tcp_server(str(port), exit_after=True)
        )
        assert finished.returncode == 5, finished.stderr
        assert "exited on its own with status 9" in finished.stderr


class TestJson:
    """--json prints one machine-readable result with timings on stdout."""

    def test_run_result_shape(self) -> None:
        """The result names the outcome, the port, the timings and the state history."""
        finished = run_cli(
            "run", "--json", "--tcp", "127.0.0.1:{port}", "--then", "true", "--", *tcp_server()
        )
        assert finished.returncode == 0, finished.stderr
        result = json.loads(finished.stdout)
        assert result["action"] == "run"
        assert result["exit_code"] == 0
        assert result["result"] == "then"
        assert isinstance(result["port"], int)
        assert result["ready_after"] >= 0
        assert result["duration"] >= result["ready_after"]
        assert result["then"]["exit_code"] == 0
        assert [(c["from"], c["to"]) for c in result["history"]] == [
            ("idle", "starting"),
            ("starting", "running"),
            ("running", "stopping"),
            ("stopping", "stopped"),
        ]
        assert all(c["at"] >= 0 for c in result["history"])

    def test_json_keeps_stdout_for_the_result(self) -> None:
        """Only the JSON object is on stdout; our progress lines are not printed."""
        finished = run_cli("run", "--json", "--hide-output", "--then", "true", "--", "sleep", "60")
        assert finished.returncode == 0
        assert json.loads(finished.stdout)["result"] == "then"
        assert "mirakuru: ready" not in finished.stderr


class TestOutput:
    """The service's output is copied to stderr unless hidden; progress is plain text."""

    def test_service_output_is_copied(self) -> None:
        """Lines the service prints appear on mirakuru's stderr, progress lines too."""
        finished = run_cli(
            "run", "--tcp", "127.0.0.1:{port}", "--then", "true", "--", *tcp_server()
        )
        assert "listening" in finished.stderr
        assert "mirakuru: ready after" in finished.stderr
        assert "\r" not in finished.stderr  # not a terminal: no live status line

    def test_hide_output_and_quiet(self) -> None:
        """--hide-output and --quiet leave stderr empty on success."""
        finished = run_cli(
            "run",
            "--quiet",
            "--hide-output",
            "--tcp",
            "127.0.0.1:{port}",
            "--then",
            "true",
            "--",
            *tcp_server(),
        )
        assert finished.returncode == 0
        assert finished.stderr == ""


def test_console_script_is_installed() -> None:
    """The ``mirakuru`` console script runs the same program as ``python -m mirakuru``."""
    script = Path(PYTHON).parent / "mirakuru"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=CLI_LIMIT, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("mirakuru ")


def _python(source: str) -> list[str]:
    return [PYTHON, "-c", source]


_NOTIFIER = (
    "import os, socket, time\n"
    "address = os.environ['NOTIFY_SOCKET']\n"
    "address = '\\0' + address[1:] if address.startswith('@') else address\n"
    "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', address)\n"
    "time.sleep(60)\n"
)
_UNIX_SERVER = (
    "import socket, sys, time\n"
    "server = socket.socket(socket.AF_UNIX)\n"
    "server.bind(sys.argv[1])\n"
    "server.listen()\n"
    "time.sleep(60)\n"
)
_PID_WRITER = (
    "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
)


class TestReadinessOptions:
    """Each readiness option, and a combination, brings a real service to ready."""

    @pytest.mark.parametrize(
        ("options", "service"),
        [
            (["--tcp", "127.0.0.1:{port}"], tcp_server()),
            (["--output", "^listening$"], tcp_server()),
            (["--tcp", "localhost:{port}", "--output", "listen"], tcp_server()),
            (["--pid-file", "{dir}/service.pid"], [*_python(_PID_WRITER), "{dir}/service.pid"]),
            (["--unix-socket", "{dir}/sock"], [*_python(_UNIX_SERVER), "{dir}/sock"]),
            (["--notify"], _python(_NOTIFIER)),
        ],
        ids=["tcp", "output", "tcp+output", "pid-file", "unix-socket", "notify"],
    )
    def test_ready_then_stopped(
        self, options: list[str], service: list[str], tmp_path: Path
    ) -> None:
        """The service becomes ready, --then runs, and the run reports success."""

        def place(text: str) -> str:
            return text.replace("{dir}", str(tmp_path))

        finished = run_cli(
            "run",
            "--json",
            *map(place, options),
            "--then",
            "true",
            "--",
            *map(place, service),
        )
        assert finished.returncode == 0, finished.stderr
        assert json.loads(finished.stdout)["result"] == "then"
