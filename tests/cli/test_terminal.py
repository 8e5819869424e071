"""On a terminal, progress is one live status line; elsewhere it is plain lines."""

from __future__ import annotations

import os
import select
import subprocess

from tests.cli.support import CLI_LIMIT, assert_nothing_left, mirakuru
from tests.helpers import free_port


def _run_on_terminal(*args: str) -> tuple[int, str]:
    """Run ``mirakuru`` with its stderr on a pseudo-terminal; exit status and what it showed."""
    leader, follower = os.openpty()
    try:
        process = subprocess.Popen(
            mirakuru(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower
        )
    finally:
        os.close(follower)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], CLI_LIMIT)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        returncode = process.wait(CLI_LIMIT)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_nothing_left(process.pid)
    return returncode, shown.decode(errors="replace")


class TestLiveStatus:
    """The status line is redrawn in place and cleared before the final message."""

    def test_wait_shows_attempts_live(self) -> None:
        """While waiting, the line shows the elapsed time and the attempt count."""
        port = free_port()
        code, shown = _run_on_terminal("wait", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.3")
        assert code == 3
        assert "\r\x1b[Kmirakuru: waiting" in shown
        assert "attempt" in shown
        assert shown.rstrip().splitlines()[-1].endswith(f"tcp('127.0.0.1', {port})")

    def test_run_shows_the_state(self) -> None:
        """While starting, the line shows the executor's state."""
        code, shown = _run_on_terminal(
            "run", "--timeout", "0.3", "--tcp", "127.0.0.1:{port}", "--", "sleep", "60"
        )
        assert code == 3
        assert "\r\x1b[Kmirakuru: starting" in shown

    def test_quiet_terminal_has_no_status_line(self) -> None:
        """--quiet keeps the terminal free of the live line, errors still show."""
        port = free_port()
        code, shown = _run_on_terminal(
            "wait", "--quiet", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.1"
        )
        assert code == 3
        assert "\x1b[K" not in shown
        assert "not ready" in shown
