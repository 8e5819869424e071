"""OutputExecutor against real processes: banners found in real output, at once."""

from __future__ import annotations

import re
import subprocess

import pytest

from mirakuru import OutputEnded, OutputExecutor, State, TimeoutExpired
from tests.helpers import python_command


def _printer(source: str) -> list[str]:
    """A child that runs ``source`` with ``sys`` and ``time`` imported, then idles."""
    return python_command(f"import sys, time\n{source}\ntime.sleep(60)\n")


class TestBannerFound:
    """start() returns once the banner appears, wherever and however it is printed."""

    @pytest.mark.parametrize(
        ("source", "banner"),
        [
            ("print('starting'); print('server ready on 8080', flush=True)", "ready on \\d+"),
            (
                "sys.stdout.write('rea'); sys.stdout.flush(); time.sleep(0.05);"
                "sys.stdout.write('dy\\n'); sys.stdout.flush()",
                "^ready$",
            ),
            ("print('x ready y\\nready', flush=True)", "^ready$"),
            (
                "sys.stdout.buffer.write(b'\\xff\\xfe junk\\nREADY \\xc3\\xa9\\n\\x80')\n"
                "sys.stdout.flush()",
                re.compile("^ready é$", re.IGNORECASE),
            ),
        ],
        ids=["regex", "split-across-writes", "anchored-mid-output", "non-utf8-around"],
    )
    def test_banner_on_stdout(self, source: str, banner: str | re.Pattern[str]) -> None:
        """The banner is matched per line, across writes, with pattern flags kept."""
        with OutputExecutor(_printer(source), banner, timeout=10) as executor:
            assert executor.state is State.RUNNING
            assert executor.running()

    def test_banner_on_stderr(self) -> None:
        """With stderr captured, a banner printed on stderr is seen too."""
        source = "print('up', file=sys.stderr, flush=True)"
        with OutputExecutor(_printer(source), "^up$", stderr=subprocess.PIPE, timeout=10):
            pass

    def test_after_twenty_megabytes(self) -> None:
        """Tens of megabytes before the banner are read through, not choked on."""
        source = (
            "chunk = ('x' * 1023 + '\\n') * 1024\n"
            "for _ in range(20): sys.stdout.write(chunk)\n"
            "print('READY', flush=True)"
        )
        with OutputExecutor(_printer(source), "^READY$", timeout=30) as executor:
            assert executor.running()

    def test_text_after_banner_stays_readable(self) -> None:
        """output() continues with what was printed after the banner line."""
        source = "print('one\\nready\\nafter the banner', flush=True)"
        with OutputExecutor(_printer(source), "ready", timeout=10) as executor:
            output = executor.output()
            assert output is not None
            assert output.readline() == "after the banner\n"

    def test_stderr_after_banner_readable(self) -> None:
        """err_output() continues after a banner that appeared on stderr."""
        source = "print('ready\\nnext', file=sys.stderr, flush=True)"
        executor = OutputExecutor(
            _printer(source), "ready", stdout=None, stderr=subprocess.PIPE, timeout=10
        )
        with executor:
            errors = executor.err_output()
            assert errors is not None
            assert errors.readline() == "next\n"


class TestOutputEnds:
    """When the output ends without the banner, start() fails at once."""

    def test_exit_zero_without_banner(self) -> None:
        """A process that exits 0 without the banner fails with OutputEnded at once."""
        executor = OutputExecutor(python_command("print('bye')"), "never", timeout=300)
        with pytest.raises(OutputEnded) as raised:
            executor.start()
        error = raised.value
        assert isinstance(error, TimeoutExpired)
        assert error.exit_code == 0
        assert "[stdout] bye" in error.output_tail
        assert "bye" in str(error)
        assert executor.state is State.FAILED
        assert not executor.running()

    def test_closed_stdout_while_alive(self) -> None:
        """Closing stdout without the banner is final too, even if the process lives on."""
        source = "import os, time; os.close(1); time.sleep(60)"
        executor = OutputExecutor(python_command(source), "never", timeout=300)
        with pytest.raises(OutputEnded):
            executor.start()
        assert not executor.running()


class TestTimeout:
    """A banner that never comes times out, killing the process."""

    def test_times_out(self) -> None:
        """TimeoutExpired after the timeout, and nothing is left running."""
        executor = OutputExecutor(_printer("print('hello', flush=True)"), "never", timeout=0.3)
        with pytest.raises(TimeoutExpired) as raised:
            executor.start()
        assert not isinstance(raised.value, OutputEnded)
        assert not executor.running()
        assert executor.state is State.FAILED


class TestBadInput:
    """Streams that cannot be watched are refused before anything is spawned."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "text"),
        [
            ({"stdout": None}, TypeError, "stdout or stderr"),
            ({"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}, TypeError, "captured"),
            ({"banner": "(bad"}, ValueError, "(bad"),
        ],
    )
    def test_refused(self, kwargs: dict[str, object], error: type[Exception], text: str) -> None:
        """Each one raises at construction, naming the problem."""
        arguments: dict[str, object] = {"banner": "ready", **kwargs}
        with pytest.raises(error, match=re.escape(text)):
            OutputExecutor(["true"], **arguments)  # type: ignore[arg-type]
