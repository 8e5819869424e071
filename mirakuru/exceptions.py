"""The errors executors raise: the published names and messages, printable and picklable."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.lifecycle import State, StateChange

__all__ = [
    "AlreadyRunning",
    "ExecutableNotFound",
    "ExecutableNotPermitted",
    "ExecutorError",
    "InvalidCommand",
    "LeftNothingRunning",
    "OutputEnded",
    "ProcessExitedWithError",
    "ProcessFinishedWithError",
    "TimeoutExpired",
    "WorkingDirectoryMissing",
    "WorkingDirectoryNotADirectory",
    "check_environment",
    "spawn_error",
]


class ExecutorSnapshot:
    """What survives of an executor when its error crosses a process boundary."""

    def __init__(self, text: str, state: State | None = None) -> None:
        from mirakuru.core.lifecycle import State

        self.text = text
        #: The executor's state when the error was sent.
        self.state: State = State.FAILED if state is None else state

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _snapshot(executor: SimpleExecutor | ExecutorSnapshot) -> ExecutorSnapshot:
    return ExecutorSnapshot(str(executor), executor.state)


class ExecutorError(Exception):
    """Base of every error about an executor; ``.executor`` is the one concerned.

    Beyond the published API it carries ``history`` (the executor's state changes up to
    the error) and ``output_tail`` (the last lines the process printed, where captured).
    """

    def __init__(self, executor: SimpleExecutor | ExecutorSnapshot, *args: Any) -> None:
        super().__init__(executor, *args)
        self.executor = executor
        self.history: Sequence[StateChange] = tuple(getattr(executor, "history", ()))
        self.output_tail: Sequence[str] = ()

    def _headline(self) -> str:
        return f"Error of the executor {self.executor}"

    def __str__(self) -> str:
        lines = [self._headline()]
        if self.output_tail:
            lines.append("Last lines of output:")
            lines.extend(f"    {line}" for line in self.output_tail)
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # The executor holds processes, threads and locks: send its description instead.
        state = {"history": tuple(self.history), "output_tail": tuple(self.output_tail)}
        args = (_snapshot(self.executor), *self.args[1:])
        return (type(self), args, state)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.__dict__.update(state or {})


class TimeoutExpired(ExecutorError):
    """The executor did not become ready (or stop) within ``timeout`` seconds.

    Where the executor knows, ``unmet`` says what it was still waiting for: the probe not
    satisfied and its last result, e.g. ``tcp 127.0.0.1:6399: connection refused (412
    attempts)``.
    """

    #: What the start was still waiting for, in words (None where unknown).
    unmet: str | None = None

    def __init__(self, executor: SimpleExecutor | ExecutorSnapshot, timeout: float | None) -> None:
        super().__init__(executor, timeout)
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        kind, args, state = super().__reduce__()
        return (kind, args, {**state, "unmet": self.unmet})

    def _not_ready(self) -> str:
        return f"; not ready: {self.unmet}" if self.unmet else ""

    def _headline(self) -> str:
        return f"Executor {self.executor} timed out after {self.timeout} seconds{self._not_ready()}"


class OutputEnded(TimeoutExpired):
    """The process's output ended without the banner: it cannot become ready any more.

    A subclass of :class:`TimeoutExpired` so existing handlers keep working.
    """

    def __init__(
        self,
        executor: SimpleExecutor | ExecutorSnapshot,
        timeout: float | None,
        exit_code: int | None = None,
    ) -> None:
        ExecutorError.__init__(self, executor, timeout, exit_code)
        self.timeout = timeout
        self.exit_code = exit_code

    def _headline(self) -> str:
        return (
            f"Executor {self.executor} ended its output without the banner"
            f" (exit code {self.exit_code}); gave up before the {self.timeout} s timeout"
            + self._not_ready()
        )


class LeftNothingRunning(TimeoutExpired):
    """The process exited with status 0 during start-up and nothing it started is left
    running (its cgroup is empty; without one, no process is in its group or session,
    carries its marker, or is an orphan born after it): it cannot become ready any more.

    Launchers that daemonize also exit 0, but leave their service running: those are
    still waited for. A subclass of :class:`TimeoutExpired` (which waiting out the timeout
    raised before) so existing handlers keep working.
    """

    def __init__(
        self,
        executor: SimpleExecutor | ExecutorSnapshot,
        timeout: float | None,
        exit_code: int = 0,
    ) -> None:
        ExecutorError.__init__(self, executor, timeout, exit_code)
        self.timeout = timeout
        self.exit_code = exit_code

    def _headline(self) -> str:
        return (
            f"Executor {self.executor} exited with status {self.exit_code} and left nothing"
            f" running; gave up before the {self.timeout} s timeout{self._not_ready()}"
        )


class AlreadyRunning(ExecutorError):
    """Something already answers the readiness check before the process was started.

    For an executor with a ``port``, ``holder`` names the process listening on it (its PID
    and command line) where we can see it.
    """

    def __init__(self, executor: SimpleExecutor | ExecutorSnapshot, *args: Any) -> None:
        super().__init__(executor, *args)
        port = getattr(executor, "port", None)
        self.holder: str | None = None
        if isinstance(port, int) and not isinstance(port, bool):
            from mirakuru.adapter.readiness.listeners import describe_listener

            self.holder = describe_listener(port)

    def __reduce__(self) -> tuple[Any, ...]:
        kind, args, state = super().__reduce__()
        return (kind, args, {**state, "holder": self.holder})

    def _headline(self) -> str:
        text = (
            f"Executor {self.executor} seems to be already running. It looks like the "
            "previous executor process hasn't been terminated or killed."
        )
        port = getattr(self.executor, "port", None)
        if port is not None:
            text += (
                f" Also there might be some completely different service listening on {port} port."
            )
        if self.holder is not None:
            text += f" Port {port} is held by {self.holder}."
        return text


class ProcessExitedWithError(ExecutorError):
    """The process exited with a non-zero code it was not expected to."""

    def __init__(self, executor: SimpleExecutor | ExecutorSnapshot, exit_code: int) -> None:
        super().__init__(executor, exit_code)
        self.exit_code = exit_code

    def _headline(self) -> str:
        return (
            f"The process invoked by the {self.executor} executor has exited with a "
            f"non-zero code: {self.exit_code}."
        )


class ProcessFinishedWithError(ProcessExitedWithError):
    """``stop()`` found that the process finished with an unexpected exit code."""


class InvalidCommand(ExecutorError, ValueError):
    """The executor has no command to run."""

    def _headline(self) -> str:
        return f"Executor {self.executor} cannot start: its command is empty"


class _CannotStart(ExecutorError, OSError):
    """Spawning failed with an OS error about ``filename``; also that OS error's class."""

    def __init__(
        self,
        executor: SimpleExecutor | ExecutorSnapshot,
        program: str,
        reason: str = "",
        code: int = errno.ENOENT,
    ) -> None:
        ExecutorError.__init__(self, executor, program, reason, code)
        self.program = program
        self.reason = reason
        # OSError read our positional arguments as (errno, strerror, filename): set them right.
        self.errno = code
        self.strerror = reason or os.strerror(code)
        self.filename = program

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError keeps only two of our arguments in ``args``: rebuild from the fields.
        state = {"history": tuple(self.history), "output_tail": tuple(self.output_tail)}
        args = (_snapshot(self.executor), self.program, self.reason, self.errno)
        return (type(self), args, state)

    def _headline(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"Executor {self.executor} cannot start {self.program!r}{why}"


class ExecutableNotFound(_CannotStart, FileNotFoundError):
    """The program to run does not exist or is not executable.

    Also a :class:`FileNotFoundError`, which callers of ``subprocess`` already catch.
    """


class ExecutableNotPermitted(ExecutableNotFound, PermissionError):
    """The program exists but may not be run (no execute bit): also a PermissionError."""


class WorkingDirectoryMissing(_CannotStart, FileNotFoundError):
    """The ``cwd`` to start the process in does not exist; ``filename`` is that cwd."""

    def _headline(self) -> str:
        where = self.program
        return f"Executor {self.executor} cannot start: its working directory {where!r} is missing"


class WorkingDirectoryNotADirectory(_CannotStart, NotADirectoryError):
    """The ``cwd`` to start the process in is not a directory; ``filename`` is that cwd."""

    def _headline(self) -> str:
        where = self.program
        return f"Executor {self.executor} cannot start: its working directory {where!r} is a file"


def spawn_error(
    executor: SimpleExecutor, error: OSError, program: str, cwd: str | os.PathLike[str] | None
) -> OSError:
    """The error to raise for an OS error from spawning ``program`` in ``cwd``.

    subprocess names the cwd as the error's filename when changing into it failed.
    """
    code = error.errno or errno.ENOENT
    reason = error.strerror or str(error)
    where = os.fspath(cwd) if cwd is not None else None
    if where is not None and error.filename == where:
        if isinstance(error, NotADirectoryError):
            return WorkingDirectoryNotADirectory(executor, where, reason, code)
        if isinstance(error, FileNotFoundError):
            return WorkingDirectoryMissing(executor, where, reason, code)
    if isinstance(error, PermissionError):
        return ExecutableNotPermitted(executor, program, reason, code)
    if isinstance(error, FileNotFoundError | NotADirectoryError):
        return ExecutableNotFound(executor, program, reason, code)
    return error


def check_environment(envvars: Mapping[Any, object]) -> None:
    """Refuse, before spawning, extra environment variables that are not str to str."""
    for key, value in envvars.items():
        if not isinstance(key, str):
            raise TypeError(f"envvars keys must be str, got {key!r} ({type(key).__name__})")
        if not isinstance(value, str):
            raise TypeError(
                f"envvars[{key!r}] must be a str, got {value!r} ({type(value).__name__})"
            )
