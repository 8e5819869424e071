"""Under ``python -X dev`` a program using mirakuru prints no ResourceWarning, even at exit."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from tests.helpers import PYTHON

#: A start, a readiness poll (TCP, through the netlink channel where there is one), a stop
#: and an AlreadyRunning: every kind of descriptor mirakuru keeps between calls gets opened.
SCRIPT = textwrap.dedent(
    """
    import socket, sys
    from mirakuru import AlreadyRunning, TCPExecutor
    from mirakuru.ports import free_port

    port = free_port()
    server = [sys.executable, "-c",
              "import socket, time; s = socket.socket();"
              f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True);"
              "time.sleep(60)"]
    with TCPExecutor(server, host="127.0.0.1", port=port, timeout=30):
        pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        try:
            TCPExecutor(["true"], host="127.0.0.1", port=taken.getsockname()[1]).start()
        except AlreadyRunning:
            pass
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("portable", ["0", "1"], ids=["linux-fast-paths", "portable"])
def test_no_resource_warning_in_dev_mode(portable: str) -> None:
    """Nothing mirakuru opens is left for the garbage collector or interpreter exit to find."""
    finished = subprocess.run(
        [PYTHON, "-X", "dev", "-W", "always::ResourceWarning", "-c", SCRIPT],
        env={**os.environ, "MIRAKURU_PORTABLE": portable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.stdout == "done\n", finished.stderr
    assert finished.returncode == 0, finished.stderr
    assert "Warning" not in finished.stderr, finished.stderr
