"""Bad input is a clear error that names the problem, with nothing left running."""

from __future__ import annotations

import errno
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirakuru import Executor, ExecutorError, SimpleExecutor, State
from mirakuru.exceptions import ExecutableNotFound, InvalidCommand
from tests.base.programs import sleeper
from tests.helpers import marked_processes


class Always(Executor):
    """Ready at once."""

    def after_start_check(self) -> bool:
        return True


@pytest.mark.parametrize("cls", [SimpleExecutor, Always])
class TestConstructorRefuses:
    """Values refused when the executor is built, before anything can spawn."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "names"),
        [
            ({"timeout": -1}, ValueError, "timeout"),
            ({"timeout": math.nan}, ValueError, "timeout"),
            ({"timeout": "10"}, TypeError, "timeout"),
            ({"sleep": 0}, ValueError, "sleep"),
            ({"sleep": -0.1}, ValueError, "sleep"),
            ({"sleep": math.nan}, ValueError, "sleep"),
            ({"stop_timeout": -1}, ValueError, "stop_timeout"),
            ({"stop_signal": 999}, ValueError, "stop_signal"),
            ({"kill_signal": 999}, ValueError, "kill_signal"),
            ({"sig_stop": 999}, ValueError, "stop_signal"),
            ({"stop_signal": "TERM"}, TypeError, "stop_signal"),
        ],
    )
    def test_refused(
        self, cls: type[SimpleExecutor], kwargs: dict[str, Any], error: type[Exception], names: str
    ) -> None:
        """The error names the argument and the value it got."""
        with pytest.raises(error) as raised:
            cls(sleeper(), **kwargs)
        message = str(raised.value)
        assert names in message
        assert repr(next(iter(kwargs.values()))) in message

    @pytest.mark.parametrize("command", [None, 42, b"sleep 1", ["sleep", 1]])
    def test_bad_command_type(self, cls: type[SimpleExecutor], command: object) -> None:
        """A command must be text or a sequence of text."""
        with pytest.raises(TypeError, match="command"):
            cls(command)  # type: ignore[arg-type]


class TestStartRefuses:
    """Problems found when starting, with nothing left running."""

    @pytest.mark.parametrize("cls", [SimpleExecutor, Always])
    @pytest.mark.parametrize(
        ("command", "shell"), [("", False), ([], False), ((), False), ("   ", True)]
    )
    def test_empty_command(self, cls: type[SimpleExecutor], command: Any, shell: bool) -> None:
        """Starting an empty command is an InvalidCommand (a ValueError) naming the problem."""
        executor = cls(command, shell=shell)
        with pytest.raises(InvalidCommand, match="command is empty") as raised:
            executor.start()
        assert isinstance(raised.value, ValueError)
        assert executor.process is None

    @pytest.mark.parametrize("cls", [SimpleExecutor, Always])
    @pytest.mark.parametrize("how", ["string", "list"])
    def test_missing_executable(self, cls: type[SimpleExecutor], how: str) -> None:
        """A missing program is both our ExecutorError and a FileNotFoundError, named."""
        program = "/nonexistent/mirakuru-test-program"
        executor = cls(program + " --flag" if how == "string" else [program, "--flag"])
        with pytest.raises(FileNotFoundError) as raised:
            executor.start()
        error = raised.value
        assert isinstance(error, ExecutableNotFound)
        assert isinstance(error, ExecutorError)
        assert program in str(error)
        assert (error.errno, error.filename) == (errno.ENOENT, program)
        assert executor.process is None
        assert executor.state is State.FAILED
        assert not marked_processes(executor)

    def test_not_executable(self, tmp_path: Path) -> None:
        """A file without execute permission is refused with the OS's reason."""
        script = tmp_path / "script"
        script.write_text("#!/bin/sh\nsleep 60\n")
        executor = SimpleExecutor([str(script)])
        with pytest.raises(ExecutableNotFound) as raised:
            executor.start()
        assert raised.value.errno == errno.EACCES
        assert "Permission denied" in str(raised.value)
        assert executor.process is None

    @pytest.mark.parametrize("check", [None, True, "ready", 1])
    def test_wait_for_needs_a_callable(self, check: object) -> None:
        """``wait_for`` refuses a non-callable, naming what it got, before waiting."""
        executor = SimpleExecutor(sleeper(), timeout=5)
        with pytest.raises(TypeError, match="wait_for needs a callable") as raised:
            executor.wait_for(check)  # type: ignore[arg-type]
        assert repr(check) in str(raised.value)

    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda e: e.stop(stop_signal=999), "stop_signal"),
            (lambda e: e.kill(sig=999), "sig"),
        ],
    )
    def test_bad_signal_at_stop(self, call: Callable[[SimpleExecutor], object], name: str) -> None:
        """An unknown signal at stop time is refused and the service keeps running."""
        executor = SimpleExecutor(sleeper()).start()
        try:
            with pytest.raises(ValueError, match=name):
                call(executor)
            assert executor.running()
        finally:
            executor.stop()
        assert not marked_processes(executor)


def test_valid_signals_are_fine() -> None:
    """Every real signal number is accepted, as a plain int or a Signals member."""
    for sig in (signal.SIGINT, int(signal.SIGUSR1), signal.SIGRTMIN):
        assert SimpleExecutor(sleeper(), stop_signal=sig)._stop_signal == sig
