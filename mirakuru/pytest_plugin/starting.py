"""Starting a declared service: a long start says on the terminal what it still waits for,
and a failed one is reported without mirakuru's own frames."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor

__all__ = ["show_progress", "started", "trimmed"]

#: One line at a time on the terminal: services of a session start on threads of their own.
_TERMINAL = threading.Lock()


def show_progress(executor: Any, request: pytest.FixtureRequest, fixture: str) -> None:
    """Have a long start of ``executor`` say on the terminal, in one line, what it still
    waits for (when the executor logs it: after a few seconds, then now and then)."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = plugins.get_plugin("capturemanager")
    root = request.config.rootpath

    def shown(waited: float, unmet: str) -> None:
        line = f"mirakuru: {fixture} still not ready after {waited:.1f} s: {unmet}"
        # Set-up output is captured: step out of it, as pytest's live logging does.
        uncaptured = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with _TERMINAL, uncaptured:
            current = getattr(reporter, "currentfspath", None)
            reporter.write_line(line)
            if isinstance(current, Path) and current.is_relative_to(root):
                # The test's result letter follows: after its file name again, as usual.
                reporter.write_fspath_result(current.relative_to(root).as_posix(), "")

    executor._on_progress = shown


def started(executor: SimpleExecutor) -> SimpleExecutor:
    """``executor.start()``; a failure is raised without mirakuru's frames or the error it
    came from (a spawn failure's subprocess internals), so the report stays about the
    service: the error, its command, and the ``mirakuru:`` section."""
    __tracebackhide__ = True
    try:
        return executor.start()
    except Exception as error:
        from mirakuru.exceptions import ExecutorError

        if not isinstance(error, ExecutorError):
            raise
        raise error.with_traceback(None) from None


def trimmed(error: BaseException) -> BaseException:
    """``error`` without its traceback, if it is an executor's (else as it is)."""
    from mirakuru.exceptions import ExecutorError

    return error.with_traceback(None) if isinstance(error, ExecutorError) else error
