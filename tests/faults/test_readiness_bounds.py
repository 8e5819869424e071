"""Readiness attempts stay within the start-up budget: a TLS server that trickles its answer
and a name that does not resolve (or whose lookup stalls) cannot stretch a start past it."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirakuru import HTTPExecutor, TCPExecutor
from mirakuru.adapter.readiness import names
from mirakuru.core.lifecycle import State
from mirakuru.exceptions import TimeoutExpired
from tests.faults.conftest import MARK
from tests.helpers import free_port, python_command

#: A safety bound for "did not hang", far beyond the budgets used; never a timing target.
OVERRUN = 1.5
#: How long the trickling server lives: what a start took before the fix, at the least.
SERVER_LIFE = 20.0


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate and key for 127.0.0.1, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def trickling_tls_server(port: int, cert: str, key: str) -> list[str]:
    """A TLS server that answers every request one header byte per 0.5 s, never ending
    its headers, and exits after SERVER_LIFE seconds."""
    return python_command(
        "import socket, ssl, threading, time, os\n"
        f"threading.Timer({SERVER_LIFE}, os._exit, (0,)).start()\n"
        "context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        f"context.load_cert_chain({cert!r}, {key!r})\n"
        f"server = socket.create_server(('127.0.0.1', {port}))\n"
        "def serve(conn):\n"
        "    try:\n"
        "        tls = context.wrap_socket(conn, server_side=True)\n"
        "        tls.recv(65536)\n"
        "        tls.sendall(b'HTTP/1.1 200 OK\\r\\nX-Slow: ')\n"
        "        while True:\n"
        "            tls.sendall(b'a')\n"
        "            time.sleep(0.5)\n"
        "    except OSError:\n"
        "        pass\n"
        "while True:\n"
        "    conn, _ = server.accept()\n"
        "    threading.Thread(target=serve, args=(conn,), daemon=True).start()\n"
    )


class TestTlsDeadline:
    """One deadline bounds every read of an HTTPS attempt, as it does for plain HTTP."""

    def test_trickling_https_server_times_out(
        self, certificate: tuple[str, str], mark: str
    ) -> None:
        """start(timeout=3) against a server sending a byte every 0.5 s ends at its timeout."""
        cert, key = certificate
        port = free_port()
        executor = HTTPExecutor(
            trickling_tls_server(port, cert, key),
            f"https://127.0.0.1:{port}/",
            timeout=3,
            envvars={MARK: mark},
        )
        began = time.monotonic()
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert time.monotonic() - began < 3 + OVERRUN
        assert not executor.running()
        assert executor.state is State.FAILED


@pytest.fixture
def stalled() -> Iterator[threading.Event]:
    """A resolver stand-in that hangs like a DNS server that never answers, until set."""
    release = threading.Event()
    yield release
    release.set()  # let the abandoned lookup threads finish


def unique_name() -> str:
    """A name no other test has looked up (each lookup is remembered for the process)."""
    return f"db-{uuid.uuid4().hex[:12]}.invalid"


class TestNameLookups:
    """A name is looked up at most once at a time, failures are not asked again on every
    poll, and a lookup that stalls is abandoned when the attempt's time is up."""

    @pytest.mark.parametrize("kind", ["tcp", "http"])
    def test_unresolvable_name_keeps_the_budget(self, mark: str, kind: str) -> None:
        """A name that does not resolve: start(timeout=2) times out after about 2 s."""
        host, port = unique_name(), free_port()
        if kind == "tcp":
            executor: TCPExecutor = TCPExecutor(
                ["sleep", "60"], host=host, port=port, timeout=2, envvars={MARK: mark}
            )
        else:
            executor = HTTPExecutor(
                ["sleep", "60"], f"http://{host}:{port}/", timeout=2, envvars={MARK: mark}
            )
        began = time.monotonic()
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert time.monotonic() - began < 2 + OVERRUN
        assert not executor.running()

    def test_stalled_lookup_is_abandoned(
        self, mark: str, stalled: threading.Event, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A resolver that never answers cannot hold start() past its timeout."""
        asked: list[str] = []

        def hang(host: str, port: int) -> names.Answer:
            asked.append(host)
            stalled.wait(60)
            raise OSError("no answer")

        monkeypatch.setattr(names, "_stream_addresses", hang)
        executor = TCPExecutor(
            ["sleep", "60"], host=unique_name(), port=free_port(), timeout=2, envvars={MARK: mark}
        )
        began = time.monotonic()
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert time.monotonic() - began < 2 + OVERRUN
        assert len(asked) == 1  # every attempt waited for the one lookup in flight

    def test_one_lookup_in_flight(self, stalled: threading.Event) -> None:
        """While a lookup is pending, later attempts wait for it, bounded, and share it."""
        calls: list[str] = []

        def slow(host: str, port: int) -> names.Answer:
            calls.append(host)
            stalled.wait(60)
            return (("family", "type", "proto", "", (host, port)),)

        host = unique_name()
        for _ in range(5):
            with pytest.raises(TimeoutError):
                names.resolve(host, 80, 0.01, slow)
        stalled.set()
        answer = names.resolve(host, 80, 30.0, slow)
        assert answer[0][4] == (host, 80)
        assert calls == [host]
        assert names.resolve(host, 80, 0.0, slow) is answer  # kept: no lookup on each poll

    def test_failure_stands_for_a_while(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A failed lookup is not repeated before RETRY_FAILED seconds, then it is."""
        now = [1000.0]
        monkeypatch.setattr(names, "monotonic", lambda: now[0])
        calls: list[float] = []

        def failing(host: str, port: int) -> names.Answer:
            calls.append(now[0])
            raise OSError("no such name")

        host = unique_name()
        for _ in range(50):
            with pytest.raises(OSError, match="no such name"):
                names.resolve(host, 80, 5.0, failing)
        assert len(calls) == 1
        now[0] += names.RETRY_FAILED
        with pytest.raises(OSError, match="no such name"):
            names.resolve(host, 80, 5.0, failing)
        assert len(calls) == 2

    def test_numbers_are_never_looked_up(self) -> None:
        """An address written as numbers is answered at once, without a resolver."""

        def never(host: str, port: int) -> names.Answer:
            raise AssertionError("looked up")

        assert names.resolve("127.0.0.1", 80, 0.0, never)[0][4] == ("127.0.0.1", 80)
        assert names.resolve("::1", 80, 0.0, never)[0][4][:2] == ("::1", 80)
