"""TCP, HTTP, pid-file, unix-socket and sd_notify readiness against real services."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import (
    AlreadyRunning,
    Executor,
    HTTPExecutor,
    PidExecutor,
    ProcessExitedWithError,
    State,
    TCPExecutor,
    TimeoutExpired,
    Trigger,
    UnixSocketExecutor,
    probes,
)
from mirakuru.base import SimpleExecutor
from tests.helpers import free_port
from tests.probes.conftest import service


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


Factory = Callable[[Path, list[str]], SimpleExecutor]


def _tcp(tmp_path: Path, extra: list[str]) -> SimpleExecutor:
    port = free_port()
    return TCPExecutor(service("http", "--port", str(port), *extra), "127.0.0.1", port, timeout=10)


def _http(tmp_path: Path, extra: list[str]) -> SimpleExecutor:
    port = free_port()
    command = service("http", "--port", str(port), *extra)
    return HTTPExecutor(command, f"http://127.0.0.1:{port}/", timeout=10)


def _pid(tmp_path: Path, extra: list[str]) -> SimpleExecutor:
    path = str(tmp_path / "service.pid")
    return PidExecutor(service("pid", "--path", path, *extra), path, timeout=10)


def _unix(tmp_path: Path, extra: list[str]) -> SimpleExecutor:
    path = str(tmp_path / "service.sock")
    return UnixSocketExecutor(service("unix", "--path", path, *extra), path, timeout=10)


def _notify(tmp_path: Path, extra: list[str]) -> SimpleExecutor:
    return Executor(service("notify", *extra), ready=probes.sd_notify(), timeout=10)


KINDS = pytest.mark.parametrize(
    "make", [_tcp, _http, _pid, _unix, _notify], ids=["tcp", "http", "pid", "unix", "notify"]
)


class TestEveryKind:
    """The lifecycle every readiness executor shares."""

    @KINDS
    def test_becomes_ready(self, make: Factory, tmp_path: Path) -> None:
        """A service that comes up after a delay is seen ready, then stopped cleanly."""
        executor = make(tmp_path, ["--delay", "0.2"])
        with executor:
            assert executor.state is State.RUNNING
            assert executor.running()
        assert executor.history[-1].dest is State.STOPPED

    @KINDS
    def test_early_death(self, make: Factory, tmp_path: Path) -> None:
        """A service that exits non-zero before it is ready fails start() with its code."""
        executor = make(tmp_path, ["--delay", "0.05", "--exit", "3"])
        executor._timeout = 300  # an early death must not wait for the deadline
        with pytest.raises(ProcessExitedWithError) as raised:
            executor.start()
        assert raised.value.exit_code == 3
        assert "[stdout] giving up" in raised.value.output_tail
        assert executor.state is State.FAILED
        assert not executor.running()


class TestTimeouts:
    """Services that never become ready time out, and leave nothing running."""

    @pytest.mark.parametrize(
        "make",
        [
            lambda p: TCPExecutor(["sleep", "60"], "127.0.0.1", free_port(), timeout=0.3),
            lambda p: HTTPExecutor(
                ["sleep", "60"], f"http://127.0.0.1:{free_port()}/", timeout=0.3
            ),
            lambda p: PidExecutor(["sleep", "60"], str(p / "never.pid"), timeout=0.3),
            lambda p: UnixSocketExecutor(["sleep", "60"], str(p / "never.sock"), timeout=0.3),
            lambda p: Executor(
                service("notify", "--never-ready"), ready=probes.sd_notify(), timeout=0.5
            ),
        ],
        ids=["tcp", "http", "pid", "unix", "notify"],
    )
    def test_times_out(self, make: Callable[[Path], SimpleExecutor], tmp_path: Path) -> None:
        """TimeoutExpired, state failed, process gone."""
        executor = make(tmp_path)
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert executor.state is State.FAILED
        assert not executor.running()


class TestAlreadyRunning:
    """Something already answering before we start means AlreadyRunning, nothing spawned."""

    def test_tcp_port_taken(self) -> None:
        """A listening socket on the port makes TCPExecutor refuse to start."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            executor = TCPExecutor(["sleep", "60"], "127.0.0.1", port)
            with pytest.raises(AlreadyRunning, match=f"listening on {port} port"):
                executor.start()
            assert executor.process is None

    def test_http_port_taken(self) -> None:
        """HTTPExecutor refuses when anything listens on its port, whatever it answers."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            executor = HTTPExecutor(["sleep", "60"], f"http://127.0.0.1:{port}/")
            with pytest.raises(AlreadyRunning):
                executor.start()
            assert executor.process is None

    def test_pid_file_exists(self, tmp_path: Path) -> None:
        """A stale pid file makes PidExecutor refuse."""
        path = tmp_path / "stale.pid"
        path.write_text("1")
        with pytest.raises(AlreadyRunning):
            PidExecutor(["sleep", "60"], str(path)).start()

    def test_unix_socket_answers(self, tmp_path: Path) -> None:
        """A listening unix socket makes UnixSocketExecutor refuse."""
        path = str(tmp_path / "taken.sock")
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path)
            listener.listen()
            with pytest.raises(AlreadyRunning):
                UnixSocketExecutor(["sleep", "60"], path).start()


class TestHTTP:
    """HTTP requests are sent as configured, and statuses matched as documented."""

    @pytest.mark.parametrize(
        ("method", "payload", "expected"),
        [
            ("HEAD", None, "HEAD /health?deep=1 "),
            ("GET", None, "GET /health?deep=1 "),
            ("POST", {"name": "value", "x": "1 2"}, "POST /health?deep=1 name=value&x=1+2"),
        ],
    )
    def test_request_shape(
        self, tmp_path: Path, method: str, payload: dict[str, str] | None, expected: str
    ) -> None:
        """Method, path, query string, url-encoded payload and headers reach the server."""
        port = free_port()
        record = tmp_path / "requests.log"
        command = service("http", "--port", str(port), "--record", str(record))
        url = f"http://127.0.0.1:{port}/health?deep=1"
        executor = HTTPExecutor(
            command, url, method=method, payload=payload, headers={"X-Probe": "yes"}, timeout=10
        )
        with executor:
            pass
        first = record.read_text().splitlines()[0]
        assert first.startswith(expected)
        assert first.endswith(" yes")

    @pytest.mark.parametrize(
        ("served", "status", "ready"),
        [
            (200, 200, True),
            (404, "404", True),
            (503, re.compile("5\\d\\d"), True),
            (500, r"^2\d\d$", False),
        ],
    )
    def test_status_matching(self, served: int, status: object, ready: bool) -> None:
        """The status is an int, a string or a regex matched at the start of the code."""
        port = free_port()
        command = service("http", "--port", str(port), "--status", str(served))
        executor = HTTPExecutor(command, f"http://127.0.0.1:{port}/", status=status, timeout=0.5)  # type: ignore[arg-type]
        if ready:
            executor.start().stop()
        else:
            with pytest.raises(TimeoutExpired):
                executor.start()
        assert not executor.running()

    def test_server_that_never_answers(self) -> None:
        """A server that accepts but never answers is bounded by request_timeout."""
        port = free_port()
        executor = HTTPExecutor(
            service("tcp-silent", "--port", str(port)),
            f"http://127.0.0.1:{port}/",
            request_timeout=0.1,
            timeout=1.0,
        )
        with pytest.raises(TimeoutExpired):
            executor.start()
        attempts = [c for c in executor.history if c.trigger is Trigger.FAIL]
        assert attempts
        assert not executor.running()

    @pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
    def test_ipv6_loopback(self) -> None:
        """A server on [::1] is reached through an IPv6 URL."""
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
        command = service("http", "--host", "::1", "--port", str(port))
        with HTTPExecutor(command, f"http://[::1]:{port}/", timeout=10) as executor:
            assert executor.host == "::1"

    def test_https_self_signed(self, certificate: tuple[str, str]) -> None:
        """https:// uses TLS; a self-signed certificate is accepted unless a context says no."""
        cert, key = certificate
        port = free_port()
        command = service("http", "--port", str(port), "--cert", cert, "--key", key)
        url = f"https://127.0.0.1:{port}/"
        with HTTPExecutor(command, url, timeout=10):
            pass
        verified = ssl.create_default_context(cafile=cert)
        with HTTPExecutor(command, url, ssl_context=verified, timeout=10):
            pass
        strict = ssl.create_default_context()  # the system CAs do not know our certificate
        executor = HTTPExecutor(command, url, ssl_context=strict, timeout=1.0)
        with pytest.raises(TimeoutExpired):
            executor.start()

    def test_attributes(self) -> None:
        """The published attributes keep their published meaning."""
        executor = HTTPExecutor(["true"], "http://localhost/path?q=1", status=201, method="GET")
        assert executor.url.path == "/path"
        assert executor.url.query == "q=1"
        assert executor.status == "201"
        assert executor.status_re.match("201")
        assert (executor.host, executor.port) == ("localhost", HTTPExecutor.DEFAULT_PORT)


class TestNotify:
    """sd_notify: READY=1 makes the service ready; STATUS= lines land in the history."""

    def test_status_in_history(self) -> None:
        """STATUS messages become notes in the state history, in order."""
        command = service("notify", "--status-message", "loading", "--status-message", "warm")
        with Executor(command, ready=probes.sd_notify(), timeout=10) as executor:
            notes = [c.detail for c in executor.history if c.trigger is Trigger.NOTIFY]
            assert notes == ["STATUS=loading", "STATUS=warm"]
            assert "NOTIFY_SOCKET" not in executor.envvars  # closed once ready


class TestComposition:
    """Executor(ready=...) takes any probe or combination."""

    def test_port_and_health_url(self) -> None:
        """Ready when the port accepts AND the health URL answers 200."""
        port = free_port()
        ready = probes.all_of(
            probes.tcp("127.0.0.1", port),
            probes.http(f"http://127.0.0.1:{port}/health", status=200),
        )
        with Executor(
            service("http", "--port", str(port), "--delay", "0.1"), ready=ready, timeout=10
        ) as ex:
            assert ex.ready == ready

    def test_any_of_with_output(self, tmp_path: Path) -> None:
        """any_of succeeds through whichever part holds first."""
        path = tmp_path / "x.pid"
        ready = probes.any_of(probes.banner("never printed"), probes.pid_file(path))
        with Executor(service("pid", "--path", str(path)), ready=ready, timeout=10):
            pass

    def test_banner_on_uncaptured_stream_refused(self) -> None:
        """Watching stderr that is not captured is an error before spawning."""
        with pytest.raises(ValueError, match="stderr is not captured"):
            Executor(["true"], ready=probes.banner("x", streams=("stderr",)))

    def test_not_a_probe(self) -> None:
        """ready= must be a probe."""
        with pytest.raises(TypeError, match="ready must be a probe"):
            Executor(["true"], ready="tcp://localhost:80")  # type: ignore[arg-type]

    def test_wait_for_probe_without_executor(self) -> None:
        """wait_for_probe waits for a service something else started, bounded by timeout."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            outcome = probes.wait_for_probe(probes.tcp(*listener.getsockname()), 5)
        assert outcome.ready
        assert outcome.attempts == 1
        missing = probes.wait_for_probe(probes.tcp("127.0.0.1", free_port()), 0.05)
        assert not missing.ready
        with pytest.raises(ValueError, match=r"needs|without starting"):
            probes.wait_for_probe(probes.banner("x"), 1)
