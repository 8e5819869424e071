"""A server that listens and then dies before accepting must fail start(), not pass it."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from mirakuru import ProcessExitedWithError, TCPExecutor
from mirakuru.adapter.readiness import evaluate, sockdiag
from tests.helpers import free_port, python_command

REDIS = shutil.which("redis-server")

# Listens, never accepts, then exits with an error: redis failing to load a module.
LISTEN_THEN_DIE = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(8)
print("listening, about to fail", flush=True)
time.sleep(0.03)
sys.exit(3)
"""

# Listens and never accepts, but stays up (a server that reads its queue much later).
NEVER_ACCEPT = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(8)
time.sleep(3600)
"""


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_redis_failing_to_load_a_module_fails_every_start() -> None:
    assert REDIS is not None
    for _ in range(20):
        port = free_port()
        command = [REDIS, "--port", str(port), "--save", "", "--loadmodule", "/nonexistent.so"]
        executor = TCPExecutor(command, host="127.0.0.1", port=port, timeout=30)
        with pytest.raises(ProcessExitedWithError) as caught:
            executor.start()
        assert caught.value.exit_code == 1
        assert any("nonexistent.so" in line for line in caught.value.output_tail)
        assert not executor.running()


def test_listener_that_exits_before_accepting() -> None:
    for _ in range(3):
        port = free_port()
        executor = TCPExecutor(
            [*python_command(LISTEN_THEN_DIE), str(port)], host="127.0.0.1", port=port, timeout=30
        )
        with pytest.raises(ProcessExitedWithError) as caught:
            executor.start()
        assert caught.value.exit_code == 3
        assert any("about to fail" in line for line in caught.value.output_tail)


def test_server_that_never_accepts_is_ready_after_the_fallback() -> None:
    port = free_port()
    executor = TCPExecutor(
        [*python_command(NEVER_ACCEPT), str(port)], host="127.0.0.1", port=port, timeout=30
    )
    with executor:
        assert executor.running()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


@pytest.mark.skipif(not sockdiag.available(), reason="needs netlink sock_diag")
def test_peer_state_tells_queued_from_accepted(listener: socket.socket) -> None:
    with socket.create_connection(listener.getsockname(), timeout=5) as client:
        assert sockdiag.peer_state(client) == "queued"
        accepted, _ = listener.accept()
        assert sockdiag.peer_state(client) == "accepted"
        accepted.close()


def test_settled_is_false_once_the_listener_closes(listener: socket.socket) -> None:
    with socket.create_connection(listener.getsockname(), timeout=5) as client:
        listener.close()  # the queued connection is reset, as when the program exits
        assert not evaluate.settled(client, 5.0)


@pytest.mark.parametrize("diag", [True, False])
def test_settled_is_true_once_accepted(
    listener: socket.socket, diag: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if diag and not sockdiag.available():
        pytest.skip("needs netlink sock_diag")
    monkeypatch.setattr(sockdiag, "available", lambda: diag)
    with socket.create_connection(listener.getsockname(), timeout=5) as client:
        accepted, _ = listener.accept()
        accepted.close()
        assert evaluate.settled(client, 5.0)


def test_settled_without_sock_diag_sees_a_reset(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockdiag, "available", lambda: False)
    with socket.create_connection(listener.getsockname(), timeout=5) as client:
        listener.close()
        assert not evaluate.settled(client, 5.0)
