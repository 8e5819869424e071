"""The published exceptions: constructors, messages, text, pickling, extra context."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from mirakuru import (
    AlreadyRunning,
    Executor,
    ExecutorError,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    SimpleExecutor,
    State,
    TimeoutExpired,
)
from mirakuru.exceptions import (
    ExecutableNotFound,
    InvalidCommand,
    LeftNothingRunning,
    OutputEnded,
)
from tests.base.programs import exits_with, sleeper


def round_trip(error: ExecutorError) -> Any:
    """``error`` pickled and unpickled, as pytest-xdist does across workers."""
    return pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made


class WithPort(SimpleExecutor):
    """An executor with a port, as the TCP and HTTP executors have."""

    def __init__(self) -> None:
        self.port = 8765
        super().__init__(sleeper())


def examples() -> list[ExecutorError]:
    """One of each error, constructed positionally as user code does."""
    executor = SimpleExecutor(sleeper())
    return [
        ExecutorError(executor),
        TimeoutExpired(executor, 5),
        AlreadyRunning(executor),
        ProcessExitedWithError(executor, 3),
        ProcessFinishedWithError(executor, -9),
        InvalidCommand(executor),
        ExecutableNotFound(executor, "nope", "No such file or directory"),
        OutputEnded(executor, 5, 1),
        LeftNothingRunning(executor, 5),
    ]


class TestHierarchy:
    """What users catch."""

    @pytest.mark.parametrize("error", examples(), ids=lambda e: type(e).__name__)
    def test_all_are_executor_errors(self, error: ExecutorError) -> None:
        """Every error is an ExecutorError carrying its executor."""
        assert isinstance(error, ExecutorError)
        assert isinstance(error.executor, SimpleExecutor)

    def test_finished_is_an_exited(self) -> None:
        """Handlers of ProcessExitedWithError around stop() still catch the stop error."""
        assert issubclass(ProcessFinishedWithError, ProcessExitedWithError)

    def test_output_ended_is_a_timeout(self) -> None:
        """Handlers of TimeoutExpired still catch a banner that can no longer appear."""
        assert issubclass(OutputEnded, TimeoutExpired)

    def test_left_nothing_running_is_a_timeout(self) -> None:
        """Handlers of TimeoutExpired still catch an exit 0 that left nothing running."""
        assert issubclass(LeftNothingRunning, TimeoutExpired)

    def test_not_found_is_a_file_not_found(self) -> None:
        """A missing executable is also the FileNotFoundError subprocess users expect."""
        assert issubclass(ExecutableNotFound, FileNotFoundError)


class TestMessages:
    """The messages users match on, in the published formats."""

    def test_timeout(self) -> None:
        """``Executor {executor} timed out after {timeout} seconds``."""
        executor = SimpleExecutor(sleeper())
        error = TimeoutExpired(executor, 5)
        assert str(error) == f"Executor {executor} timed out after 5 seconds"
        assert error.timeout == 5

    def test_already_running(self) -> None:
        """The already-running message, without a port."""
        executor = SimpleExecutor(sleeper())
        assert str(AlreadyRunning(executor)) == (
            f"Executor {executor} seems to be already running. It looks like the previous "
            "executor process hasn't been terminated or killed."
        )

    def test_already_running_with_port(self) -> None:
        """With a port, the message adds that something else may be listening there."""
        executor = WithPort()
        assert (
            "hasn't been terminated or killed. Also there might be some completely different"
            " service listening on 8765 port." in str(AlreadyRunning(executor))
        )

    @pytest.mark.parametrize("cls", [ProcessExitedWithError, ProcessFinishedWithError])
    def test_exited(self, cls: type[ProcessExitedWithError]) -> None:
        """The non-zero exit message names the executor and the code."""
        executor = SimpleExecutor(sleeper())
        error = cls(executor, 3)
        assert error.exit_code == 3
        assert str(error) == (
            f"The process invoked by the {executor} executor has exited with a non-zero code: 3."
        )

    def test_base_error_does_not_recurse(self) -> None:
        """``str(ExecutorError(executor))`` prints (the published one recursed forever)."""
        executor = SimpleExecutor(sleeper())
        assert str(executor) in str(ExecutorError(executor))

    def test_output_tail_is_shown(self) -> None:
        """The last lines of output follow the headline."""
        error = ProcessExitedWithError(SimpleExecutor(sleeper()), 1)
        error.output_tail = ["[stderr] fatal: no config"]
        assert str(error).splitlines()[-1].strip() == "[stderr] fatal: no config"


class TestPickling:
    """Errors cross process boundaries (pytest-xdist, multiprocessing)."""

    @pytest.mark.parametrize("error", examples(), ids=lambda e: type(e).__name__)
    def test_round_trip(self, error: ExecutorError) -> None:
        """An error survives pickling with its type, fields and message."""
        error.output_tail = ["[stdout] last words"]
        copy = round_trip(error)
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert list(copy.output_tail) == ["[stdout] last words"]
        for field in ("timeout", "exit_code", "program"):
            assert getattr(copy, field, None) == getattr(error, field, None)

    def test_real_failure_round_trips(self) -> None:
        """An error raised by a real failed start keeps its history across pickling."""

        class Never(Executor):
            def after_start_check(self) -> bool:
                return False

        with pytest.raises(ProcessExitedWithError) as raised:
            Never(exits_with(2, "bad config"), timeout=30).start()
        copy = round_trip(raised.value)
        assert copy.exit_code == 2
        assert "[stdout] bad config" in copy.output_tail
        assert [c.dest for c in copy.history] == [c.dest for c in raised.value.history]
        assert str(copy) == str(raised.value)


class TestContext:
    """What errors carry beyond the published API."""

    def test_history_at_the_error(self) -> None:
        """``history`` holds the state changes up to the error."""
        executor = SimpleExecutor(sleeper())
        assert ExecutorError(executor).history == ()
        executor.start().stop()
        history = ExecutorError(executor).history
        assert [c.dest for c in history][-1] is State.STOPPED

    def test_output_tail_defaults_empty(self) -> None:
        """Without captured output the tail is empty."""
        assert list(ExecutorError(SimpleExecutor(sleeper())).output_tail) == []
