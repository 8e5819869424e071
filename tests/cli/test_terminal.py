"""On a terminal, progress is one live status line cut to the terminal's width."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios

import pytest

from mirakuru.cli.console import fit
from tests.cli.support import CLI_LIMIT, assert_nothing_left, mirakuru, tcp_server
from tests.helpers import PYTHON, free_port

_CLEAR = "\r\x1b[K"


def _run_on_terminal(*args: str, columns: int = 80) -> tuple[int, str]:
    """Run ``mirakuru`` with its stderr on a pseudo-terminal ``columns`` wide."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
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


def _frames(shown: str) -> list[str]:
    """Every status frame drawn: text after a clear that the next clear replaces, no newline."""
    return [part for part in shown.split(_CLEAR)[1:] if "\n" not in part]


def _slow_http_service() -> list[str]:
    # Long enough for many frames; the long path makes the status line wider than 40 columns.
    return ["sh", "-c", f"sleep 0.6; exec {PYTHON} -m http.server --bind 127.0.0.1 {{port}}"]


class TestLiveStatus:
    """The status line is redrawn in place, fits the terminal and is cleared at the end."""

    @pytest.mark.parametrize("columns", [40, 80, 200])
    def test_never_wider_than_the_terminal(self, columns: int) -> None:
        """No frame of ``run`` is as wide as the terminal, so none wraps onto a second row."""
        code, shown = _run_on_terminal(
            "run",
            "--http",
            "http://127.0.0.1:{port}/a/rather/long/path/to/make/the/line/wide",
            "--status",
            "404",
            "--then",
            "true",
            "--",
            *_slow_http_service(),
            columns=columns,
        )
        assert code == 0, shown
        frames = [frame for frame in _frames(shown) if frame]
        assert frames, shown
        assert [f for f in frames if len(f) >= columns] == []
        assert all(frame.startswith("mirakuru: starting") for frame in frames), frames
        assert "idle" not in shown
        assert "http(" not in shown  # a short description, not a Python repr
        assert "http 127.0.0.1:" in shown

    def test_wait_shows_attempts_live(self) -> None:
        """While waiting, the line shows the elapsed time, the attempts and the probe."""
        port = free_port()
        code, shown = _run_on_terminal("wait", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.5")
        assert code == 3
        assert f"{_CLEAR}mirakuru: waiting" in shown
        assert "attempt" in shown
        assert shown.rstrip().splitlines()[-1].endswith(f"tcp 127.0.0.1:{port}")

    def test_service_output_does_not_repeat_a_stale_line(self) -> None:
        """Each line of the service's output starts on a cleared row and is never mixed in."""
        code, shown = _run_on_terminal(
            "run",
            "--tcp",
            "127.0.0.1:{port}",
            "--then",
            "true",
            "--",
            "sh",
            "-c",
            'for i in 1 2 3; do echo line-$i; sleep 0.15; done; exec "$@"',
            "sh",
            *tcp_server(),
        )
        assert code == 0, shown
        for number in (1, 2, 3):
            row = next(r for r in shown.split("\n") if f"line-{number}" in r)
            assert row.rstrip("\r").endswith(f"line-{number}"), row
            assert "mirakuru: starting" not in row.split(f"line-{number}")[0].split(_CLEAR)[-1]

    def test_quiet_terminal_has_no_status_line(self) -> None:
        """--quiet keeps the terminal free of the live line, errors still show."""
        port = free_port()
        code, shown = _run_on_terminal(
            "wait", "--quiet", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.1"
        )
        assert code == 3
        assert "\x1b[K" not in shown
        assert "not ready" in shown


class TestFit:
    """Cutting a line to a width counts cells, not characters."""

    @pytest.mark.parametrize("columns", [1, 2, 4, 10, 40])
    def test_fits(self, columns: int) -> None:
        """The result always leaves the last cell free."""
        assert len(fit("x" * 100, columns)) <= max(columns - 1, 1)

    def test_wide_characters_take_two_cells(self) -> None:
        """East Asian wide characters count twice."""
        assert fit("日本語テキスト", 9) == "日本..."

    def test_short_text_is_kept_and_controls_are_shown(self) -> None:
        """Short text is unchanged, apart from control characters."""
        assert fit("ready\x1b", 80) == "ready?"
