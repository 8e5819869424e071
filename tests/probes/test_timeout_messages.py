"""Every TimeoutExpired names the probe that was not satisfied and its last result."""

from __future__ import annotations

import pickle
import re
import subprocess
from pathlib import Path

import pytest

from mirakuru import (
    Executor,
    HTTPExecutor,
    OutputExecutor,
    PidExecutor,
    TCPExecutor,
    TimeoutExpired,
    UnixSocketExecutor,
    probes,
)
from tests.helpers import free_port
from tests.probes.conftest import service

#: Short: these services never become ready, and each test waits out the whole timeout.
SHORT = 0.5


def _timeout(executor: Executor) -> TimeoutExpired:
    with pytest.raises(TimeoutExpired) as caught:
        executor.start()
    assert not executor.running()
    return caught.value


class TestEachKind:
    """The message names the probe and what its last attempt found."""

    def test_tcp_connection_refused(self) -> None:
        """Nobody listens on the port: 'connection refused', with the attempt count."""
        port = free_port()
        error = _timeout(TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=SHORT))
        assert error.unmet is not None
        assert re.fullmatch(
            rf"tcp 127\.0\.0\.1:{port}: connection refused \(\d+ attempts\)", error.unmet
        )
        headline = str(error).splitlines()[0]
        assert headline.startswith("Executor ")
        assert f"timed out after {SHORT} seconds; not ready: {error.unmet}" in headline

    def test_http_last_status(self) -> None:
        """A server answering 500 is named with the status it gave."""
        port = free_port()
        executor = HTTPExecutor(
            service("http", "--port", str(port), "--status", "500"),
            f"http://127.0.0.1:{port}/health",
            timeout=1.5,
        )
        error = _timeout(executor)
        assert error.unmet is not None
        assert error.unmet.startswith(f"http 127.0.0.1:{port}/health: last answer 500 (")
        assert "last answer 500" in str(error)

    def test_banner_on_an_uncaptured_stream(self) -> None:
        """A banner names the streams it watched, and that stderr was not captured."""
        command = ["sh", "-c", "echo starting; echo ready >&2; sleep 60"]
        error = _timeout(OutputExecutor(command, banner="ready", timeout=SHORT))
        assert error.unmet == "banner 'ready' not seen on stdout (stderr is not captured)"

    def test_pid_file(self, tmp_path: Path) -> None:
        """A pid file that never appears: 'does not exist'."""
        path = tmp_path / "service.pid"
        error = _timeout(PidExecutor(["sleep", "60"], path, timeout=SHORT))
        assert error.unmet is not None
        assert error.unmet.startswith(f"pid file {path} does not exist (")

    def test_unix_socket(self, tmp_path: Path) -> None:
        """A unix socket that never appears: 'does not exist'."""
        path = tmp_path / "service.sock"
        error = _timeout(UnixSocketExecutor(["sleep", "60"], str(path), timeout=SHORT))
        assert error.unmet is not None
        assert error.unmet.startswith(f"unix socket {path} does not exist (")

    def test_combination(self, tmp_path: Path) -> None:
        """all_of names the member that holds it up."""
        port = free_port()
        probe = probes.all_of(probes.pid_file(tmp_path / "x.pid"), probes.tcp("127.0.0.1", port))
        error = _timeout(Executor(["sleep", "60"], ready=probe, timeout=SHORT))
        assert error.unmet is not None
        assert error.unmet.startswith(f"pid file {tmp_path / 'x.pid'} does not exist")

    def test_one_attempt_is_singular(self) -> None:
        """timeout=0 makes exactly one check: '(1 attempt)'."""
        port = free_port()
        error = _timeout(TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=0))
        assert error.unmet == f"tcp 127.0.0.1:{port}: connection refused (1 attempt)"


class TestCustomChecks:
    """A subclass's own check is named when the probe tells nothing."""

    def test_overridden_after_start_check(self) -> None:
        """The class and the method that kept saying no are named."""

        class Stubborn(Executor):
            def after_start_check(self) -> bool:
                return False

            def pre_start_check(self) -> bool:
                return False

        error = _timeout(Stubborn(["sleep", "60"], timeout=SHORT))
        assert error.unmet is not None
        assert re.fullmatch(
            r"Stubborn\.after_start_check\(\) never returned True \(\d+ attempts?\)", error.unmet
        )


def test_unmet_survives_pickling() -> None:
    """What was missing crosses process boundaries (pytest-xdist) with the error."""
    port = free_port()
    error = _timeout(TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=0))
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert copy.unmet == error.unmet
    assert str(copy).splitlines()[0].endswith(f"not ready: {error.unmet}")


def test_stream_capture_is_checked_first() -> None:
    """Watching an uncaptured stream is still refused before spawning."""
    with pytest.raises(ValueError, match="stderr is not captured"):
        Executor(["true"], ready=probes.banner("x", ["stderr"]), stderr=subprocess.DEVNULL)
