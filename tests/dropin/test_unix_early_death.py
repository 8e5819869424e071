"""A unix-socket server that listens and dies before accepting must fail start(), not pass it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from mirakuru import ProcessExitedWithError, UnixSocketExecutor
from mirakuru.adapter.capabilities import PORTABLE_ENV
from mirakuru.adapter.readiness import evaluate, sockdiag
from tests.helpers import python_command

# Listens, never accepts, and exits with an error at once (the worst case for a prober).
LISTEN_THEN_DIE = """
import socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(8)
print("listening, about to fail", flush=True)
sys.exit(1)
"""

# As above, but a little later: inside the short reset watch of the portable fallback.
LISTEN_THEN_DIE_SOON = LISTEN_THEN_DIE.replace(
    "sys.exit(1)", "import time; time.sleep(0.02); sys.exit(1)"
)

HEALTHY = """
import socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(8)
while True:
    server.accept()[0].close()
"""

# Listens and never accepts, but stays up.
NEVER_ACCEPT = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(8)
time.sleep(3600)
"""


@pytest.fixture
def path() -> Iterator[str]:
    # Short on purpose: a unix socket path is limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="mu-") as directory:
        yield os.path.join(directory, "s")


def _executor(source: str, path: str) -> UnixSocketExecutor:
    return UnixSocketExecutor([*python_command(source), path], path, timeout=30)


def test_listener_that_exits_before_accepting_fails_every_start(path: str) -> None:
    for _ in range(20):
        executor = _executor(LISTEN_THEN_DIE, path)
        with pytest.raises(ProcessExitedWithError) as caught:
            executor.start()
        assert caught.value.exit_code == 1
        assert any("about to fail" in line for line in caught.value.output_tail)
        assert not executor.running()
        os.unlink(path)


def test_server_that_accepts_is_ready(path: str) -> None:
    with _executor(HEALTHY, path) as executor:
        assert executor.running()


def test_server_that_never_accepts_is_ready_after_the_fallback(path: str) -> None:
    with _executor(NEVER_ACCEPT, path) as executor:
        assert executor.running()


@pytest.fixture
def listener(path: str) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(8)
        yield server


@pytest.mark.skipif(not sockdiag.sees(socket.AF_UNIX), reason="needs netlink UNIX_DIAG")
def test_peer_state_tells_queued_from_accepted(listener: socket.socket, path: str) -> None:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        assert sockdiag.peer_state(client) == "queued"
        accepted, _ = listener.accept()
        assert sockdiag.peer_state(client) == "accepted"
        accepted.close()
        # Closed by the program: the peer has no file again, and our socket reads EOF.
        assert evaluate.settled(client, 5.0)


@pytest.mark.parametrize("diag", [True, False])
def test_settled_on_a_unix_socket(
    listener: socket.socket, path: str, diag: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if diag and not sockdiag.sees(socket.AF_UNIX):
        pytest.skip("needs netlink UNIX_DIAG")
    monkeypatch.setattr(sockdiag, "available", lambda: diag)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        accepted, _ = listener.accept()
        with accepted:
            assert evaluate.settled(client, 5.0)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        listener.close()  # the queued connection is reset, as when the program exits
        assert not evaluate.settled(client, 5.0)


# The same three behaviours with every fallback forced, in a fresh interpreter (the
# capabilities are read once per process).
PORTABLE_CHECK = f"""
import os, sys
from mirakuru import ProcessExitedWithError, UnixSocketExecutor
from mirakuru.adapter.readiness import sockdiag
assert not sockdiag.available()
path = sys.argv[1]
def executor(source):
    return UnixSocketExecutor([sys.executable, "-c", source, path], path, timeout=30)
for _ in range(5):
    try:
        executor({LISTEN_THEN_DIE_SOON!r}).start()
    except ProcessExitedWithError as error:
        assert error.exit_code == 1, error.exit_code
    else:
        raise AssertionError("a listener that died was ready")
    os.unlink(path)
for source in ({HEALTHY!r}, {NEVER_ACCEPT!r}):
    with executor(source) as running:
        assert running.running()
    os.unlink(path)
print("portable ok")
"""


def test_portable_fallback_watches_for_the_reset(path: str) -> None:
    env = {**os.environ, PORTABLE_ENV: "1"}
    result = subprocess.run(
        [sys.executable, "-c", PORTABLE_CHECK, path],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "portable ok" in result.stdout
