"""A long start-up says on the ``mirakuru`` logger what it still waits for, now and then."""

from __future__ import annotations

import logging
import socket

import pytest

from mirakuru import OutputExecutor, TCPExecutor, TimeoutExpired
from mirakuru.core import progress

#: Lowered thresholds (our own constants): reports after 0.3 s, then every 0.4 s.
FIRST, EVERY = 0.3, 0.4


@pytest.fixture
def quick_reports(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "FIRST_REPORT", FIRST)
    monkeypatch.setattr(progress, "REPORT_EVERY", EVERY)
    caplog.set_level(logging.INFO, logger="mirakuru")


def _reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "still not ready after" in r.getMessage()]


@pytest.mark.usefixtures("quick_reports")
class TestReports:
    """Reports come after the first threshold, then once per period, never per attempt."""

    def test_polled_probe(self, caplog: pytest.LogCaptureFixture) -> None:
        """A port nobody listens on: a few INFO lines on 'mirakuru', each with the probe."""
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
        executor = TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=1.5)
        with pytest.raises(TimeoutExpired):
            executor.start()
        reports = _reports(caplog)
        # 1.5 s of waiting earns reports at 0.3, 0.7, 1.1 (and 1.5 at the very edge).
        assert 2 <= len(reports) <= 4, [r.getMessage() for r in reports]
        for record in reports:
            assert record.name == "mirakuru"
            assert record.levelno == logging.INFO
            assert f"tcp 127.0.0.1:{port}: connection refused (" in record.getMessage()

    def test_event_driven_wait(self, caplog: pytest.LogCaptureFixture) -> None:
        """A banner wait (woken by output, checked once a second otherwise) reports too."""
        executor = OutputExecutor(["sleep", "60"], banner="ready", timeout=2.5)
        with pytest.raises(TimeoutExpired):
            executor.start()
        reports = _reports(caplog)
        assert reports
        assert "banner 'ready' not seen on stdout" in reports[0].getMessage()

    def test_quick_start_says_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """A service ready before the first threshold logs no progress."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            executor = TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=5)
            executor.pre_start_check = lambda: False  # type: ignore[method-assign]
            with executor:
                pass
        assert not _reports(caplog)

    def test_a_failing_hook_never_breaks_the_start(self) -> None:
        """The start times out as usual when the progress hook raises."""

        def broken(waited: float, unmet: str) -> None:
            raise RuntimeError("hook bug")

        executor = TCPExecutor(["sleep", "60"], host="127.0.0.1", port=1, timeout=0.6)
        executor._on_progress = broken
        with pytest.raises(TimeoutExpired):
            executor.start()
