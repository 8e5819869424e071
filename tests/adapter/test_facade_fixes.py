"""Drop-in details handled by the facade and the waiter, against real processes."""

from __future__ import annotations

import subprocess
import time
import warnings
from unittest import mock

import pytest

from mirakuru import probes
from mirakuru.base import Executor, SimpleExecutor
from mirakuru.exceptions import TimeoutExpired
from mirakuru.http import HTTPExecutor
from tests.base.programs import sleeper
from tests.helpers import free_port, python_command

#: A safety bound, far beyond anything expected; never a timing target.
BOUND = 30.0

_TRICKLE = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    for byte in b"HTTP/1.0 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n":
        conn.sendall(bytes([byte]))
        time.sleep(1)
    conn.close()
"""


def test_trickling_http_server_times_out() -> None:
    """A server answering one byte per second cannot keep start() past its timeout."""
    port = free_port()
    executor = HTTPExecutor(
        [*python_command(_TRICKLE), str(port)], f"http://127.0.0.1:{port}/", timeout=2
    )
    began = time.monotonic()
    with pytest.raises(TimeoutExpired):
        executor.start()
    # The answer takes over 40 s to trickle in; ending far sooner shows the bound holds.
    assert time.monotonic() - began < BOUND
    assert not executor.running()


def test_popen_kwargs_never_override_essentials() -> None:
    """Pipes, text mode, shell, env and cwd stay the executor's; other keys pass through."""
    executor = SimpleExecutor(
        sleeper(),
        popen_kwargs={
            "stdout": None,
            "stdin": None,
            "stderr": subprocess.STDOUT,
            "shell": True,
            "env": {},
            "cwd": "/",
            "universal_newlines": False,
            "bufsize": 1,
        },
    )
    kwargs = executor._popen_kwargs
    assert kwargs["stdout"] == subprocess.PIPE
    assert kwargs["stdin"] == subprocess.PIPE
    assert kwargs["stderr"] is None
    assert kwargs["shell"] is False
    assert kwargs["universal_newlines"] is True
    assert kwargs["cwd"] is None
    assert "mirakuru_uuid" in kwargs["env"]
    assert kwargs["bufsize"] == 1


def test_timeout_true_means_one_second() -> None:
    """timeout=True (accepted by mirakuru 3.1) is one second, with a DeprecationWarning."""
    with pytest.warns(DeprecationWarning, match="timeout=True"):
        executor = SimpleExecutor(sleeper(), timeout=True)
    assert executor._timeout == 1


def test_base_executor_checks_are_abstract() -> None:
    """Without ready=, both checks raise NotImplementedError, and nothing is spawned."""
    executor = Executor(sleeper())
    with pytest.raises(NotImplementedError):
        executor.pre_start_check()
    with pytest.raises(NotImplementedError):
        executor.after_start_check()
    with pytest.raises(NotImplementedError):
        executor.start()
    assert executor.process is None


def test_popen_stand_in_is_driven_through_its_methods() -> None:
    """A mocked Popen is started and stopped through its own methods; its PID is left alone."""
    victim = subprocess.Popen(sleeper(), start_new_session=True)
    try:
        with mock.patch("subprocess.Popen") as popen:
            stand_in = popen.return_value
            stand_in.pid = victim.pid
            stand_in.poll.return_value = None
            stand_in.wait.return_value = -15
            stand_in.returncode = None
            executor = SimpleExecutor(sleeper()).start()
            assert executor.running()
            executor.stop()
        stand_in.send_signal.assert_called_once()
        assert victim.poll() is None  # the PID it claimed was never signalled
    finally:
        victim.kill()
        victim.wait(BOUND)


def test_banner_longer_than_a_read_block() -> None:
    """A banner at the end of a 3 MiB line, split across reads, is still matched."""
    script = "import sys, time\nsys.stdout.write('x' * (3 << 20) + ' READY\\n')\n"
    script += "sys.stdout.flush()\ntime.sleep(60)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with Executor(python_command(script), ready=probes.banner(r"x READY$"), timeout=BOUND):
            pass
