"""Construction accepts what mirakuru 3.1.0 accepted; checks read the attributes at call time."""

from __future__ import annotations

import socket
from pathlib import Path
from unittest import mock

import pytest

from mirakuru import HTTPExecutor, PidExecutor, TCPExecutor, UnixSocketExecutor
from mirakuru.core.probes import Http
from tests.helpers import free_port, python_command

# Answers every request with 200, each one after 50 ms: slower than a 1 ms limit.
SLOW_HTTP = """
import http.server, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

LISTEN = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(8)
while True:
    server.accept()[0].close()
"""


def test_placeholder_host_constructs_and_start_names_it() -> None:
    executor = TCPExecutor(python_command("pass"), host="", port=8838)
    assert (executor.host, executor.port) == ("", 8838)
    with pytest.raises(ValueError, match=r"TCPExecutor\.host .*''"):
        executor.start()
    assert executor.process is None


def test_bad_port_is_named_by_start_before_spawning() -> None:
    executor = TCPExecutor(python_command("pass"), host="127.0.0.1", port=0)
    with pytest.raises(ValueError, match=r"TCPExecutor\.port .*\b0\b"):
        executor.start()
    executor.port = "80"  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"TCPExecutor\.port .*'80'"):
        executor.pre_start_check()
    assert executor.process is None


def test_port_changed_after_construction_is_obeyed() -> None:
    port = free_port()
    executor = TCPExecutor([*python_command(LISTEN), str(port)], host="127.0.0.1", port=1)
    executor.port = port
    with executor:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert executor.after_start_check()


def test_default_port_patched_before_construction(tmp_path: Path) -> None:
    port = free_port()
    command = [*python_command(SLOW_HTTP), str(port)]
    with mock.patch.object(HTTPExecutor, "DEFAULT_PORT", port):
        executor = HTTPExecutor(command, "http://127.0.0.1/", timeout=20)
    assert executor.port == port
    with executor:
        assert executor.running()


def test_http_host_changed_after_construction() -> None:
    port = free_port()
    executor = HTTPExecutor(
        [*python_command(SLOW_HTTP), str(port)], f"http://localhost.invalid:{port}/", timeout=20
    )
    executor.host = "127.0.0.1"
    with executor:
        assert executor.after_start_check()


def test_request_timeout_zero_means_the_start_budget() -> None:
    port = free_port()
    executor = HTTPExecutor(
        [*python_command(SLOW_HTTP), str(port)],
        f"http://127.0.0.1:{port}/",
        request_timeout=0,
        timeout=20,
    )
    with executor:
        assert executor.running()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: HTTPExecutor(["true"], "http:///path"), "host"),
        (lambda: HTTPExecutor(["true"], "http://h/", request_timeout=-1), "request_timeout"),
        (lambda: PidExecutor(["true"], ""), "filename"),
    ],
)
def test_what_the_published_constructors_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_pid_and_socket_paths_are_read_at_call_time(tmp_path: Path) -> None:
    pid = PidExecutor(["true"], tmp_path / "a.pid")
    pid.filename = str(tmp_path / "b.pid")
    (tmp_path / "b.pid").write_text("1")
    assert pid.pre_start_check()
    unix = UnixSocketExecutor(["true"], str(tmp_path / "a.sock"))
    assert unix.socket == str(tmp_path / "a.sock")
    unix.socket = ""
    with pytest.raises(ValueError, match=r"UnixSocketExecutor\.socket "):
        unix.start()
    assert unix.process is None


def test_http_probe_is_rebuilt_only_when_an_attribute_changes() -> None:
    """The HTTP probe is reused between checks, yet a change, even to a dict in place, is seen."""
    executor = HTTPExecutor(["true"], "http://127.0.0.1:8000/", headers={"A": "1"})
    first = executor._readiness_probe()
    assert executor._readiness_probe() is first
    assert executor.headers is not None
    executor.headers["A"] = "2"
    changed = executor._readiness_probe()
    assert changed is not first
    assert isinstance(changed, Http)
    assert changed.headers == (("A", "2"),)
    executor.method = "GET"
    assert executor._readiness_probe() is not changed
