"""The two commands: ``wait`` for a service, and ``run`` one from start to stop."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Self

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.teardown.remains import anything_left
from mirakuru.base import ENV_UUID, Executor, SimpleExecutor
from mirakuru.cli.args import DIED, NOT_READY, OK, SIGNALLED, START_FAILED, UNCLEAN_STOP
from mirakuru.cli.console import Console, describe, live_status
from mirakuru.core.probes import Probe
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutableNotFound,
    ExecutorError,
    LeftNothingRunning,
    OutputEnded,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    TimeoutExpired,
)
from mirakuru.probes import wait_for_probe

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Interrupted", "SignalGuard", "exit_status", "run", "wait"]

Result = tuple[int, dict[str, Any]]
#: How often ``run`` looks whether a daemonized service (its launcher exited 0) still runs.
_REMAINS_EVERY = 0.25


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; carries the signal number for the exit status."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalGuard:
    """Turns the first SIGINT or SIGTERM into :class:`Interrupted`; later ones are only noted.

    Once shielded (by the first signal, or before clean-up), signals no longer interrupt,
    so stopping the process tree, which is bounded, always runs to the end.
    """

    def __init__(self) -> None:
        self.shielded = False
        self.received: list[int] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if not self.shielded:
            self.shielded = True
            raise Interrupted(signum)

    def shield(self) -> None:
        """From now on, signals are noted but interrupt nothing."""
        self.shielded = True

    @contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        """Handle SIGINT and SIGTERM this way for the duration of the block."""
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._handle) for sig in sigs}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it (128+N when ended by signal N)."""
    return SIGNALLED - returncode if returncode < 0 else returncode


def _how_it_ended(returncode: int) -> str:
    """``status 1`` or ``signal SIGKILL (status 137)``, for messages."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal {name} (status {exit_status(returncode)})"


def _history(executor: SimpleExecutor, origin: float) -> list[dict[str, Any]]:
    return [
        {
            "at": round(change.at - origin, 6),
            "trigger": change.trigger.value,
            "from": change.source.value,
            "to": change.dest.value,
            "detail": getattr(change, "detail", None),
        }
        for change in executor.history
    ]


# -- wait -----------------------------------------------------------------------------------------


def wait(args: argparse.Namespace, probe: Probe, console: Console) -> Result:
    """``mirakuru wait``: poll ``probe`` until it holds or ``--timeout`` passes."""
    began = monotonic()
    attempts = 0
    what = describe(probe)

    def count(attempt_number: int) -> None:
        nonlocal attempts
        attempts = attempt_number

    def render() -> str:
        return f"mirakuru: waiting {monotonic() - began:.1f} s, attempt {attempts}: {what}"

    result: dict[str, Any] = {"probe": what, "attempts": 0}
    try:
        with SignalGuard().installed(), live_status(console, render):
            outcome = wait_for_probe(probe, args.timeout, on_attempt=count)
    except Interrupted as interrupt:
        console.error(f"interrupted after {monotonic() - began:.3f} s, not ready: {what}")
        result.update(
            result="interrupted", attempts=attempts, duration=round(monotonic() - began, 6)
        )
        return SIGNALLED + interrupt.signum, result
    duration = monotonic() - began
    result.update(attempts=attempts, duration=round(duration, 6))
    if outcome.ready:
        console.info(f"ready after {duration:.3f} s ({attempts} attempts): {what}")
        result["result"] = "ready"
        return OK, result
    console.error(f"not ready after {args.timeout:g} s ({attempts} attempts): {what}")
    result["result"] = "timeout"
    return NOT_READY, result


# -- run ------------------------------------------------------------------------------------------


def _copy_output(stream: IO[str] | None, console: Console) -> threading.Thread | None:
    """Copy a captured stream of the service to our stderr, line by line, in a thread."""
    if stream is None:
        return None

    def pump() -> None:
        try:
            for line in stream:
                console.passthrough(line)
        except (OSError, ValueError):
            return  # the spool was released: nothing more to copy

    thread = threading.Thread(target=pump, name="mirakuru-echo", daemon=True)
    thread.start()
    return thread


def _run_then(command: str, grace: float, *, stdout_to_stderr: bool) -> int:
    """Run ``command`` with the shell in our process group; on interruption, end it too."""
    stdout = sys.stderr.fileno() if stdout_to_stderr else None
    child = subprocess.Popen(command, shell=True, stdout=stdout)  # noqa: S602 - a shell command
    try:
        return exit_status(child.wait())
    except Interrupted:
        # The guard is shielded now: this clean-up cannot be interrupted in turn.
        child.terminate()
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


class _Service(Executor):
    """An executor that counts readiness attempts and reports when its process exists."""

    def __init__(self, *args: Any, on_spawn: Callable[[], None], **kwargs: Any) -> None:
        self.attempts = 0
        self._on_spawn: Callable[[], None] | None = on_spawn
        super().__init__(*args, **kwargs)

    def wait_for(self, wait_for: Callable[[], bool]) -> Self:
        # start() calls this right after spawning: the moment output can be followed.
        on_spawn, self._on_spawn = self._on_spawn, None
        if on_spawn is not None:
            on_spawn()
        return super().wait_for(wait_for)

    def after_start_check(self) -> bool:
        self.attempts += 1
        return super().after_start_check()


def _make_executor(
    args: argparse.Namespace, probe: Probe | None, on_spawn: Callable[[], None]
) -> SimpleExecutor:
    options: dict[str, Any] = {
        "timeout": args.timeout,
        "stop_timeout": args.stop_timeout,
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    if probe is None:
        return SimpleExecutor(args.command, **options)
    return _Service(args.command, ready=probe, on_spawn=on_spawn, **options)


class _Run:
    """One ``mirakuru run``: start, wait, serve or run --then, stop; collects the result."""

    def __init__(
        self, args: argparse.Namespace, probe: Probe | None, port: int | None, console: Console
    ) -> None:
        self.args = args
        self.probe = probe
        self.what = describe(probe) if probe is not None else None
        self.program = os.path.basename(args.command[0])
        self.console = console
        self.began = monotonic()
        self.started = False
        self.echoes: list[threading.Thread] = []
        self.executor = _make_executor(args, probe, self._follow_output)
        self.result: dict[str, Any] = {
            "service": shlex.join(args.command),
            "probe": self.what,
            "port": port,
            "ready_after": None,
            "then": None,
        }

    def _follow_output(self) -> None:
        if self.args.hide_output or self.echoes:
            return
        for stream in (self.executor.output(), self.executor.err_output()):
            thread = _copy_output(stream, self.console)
            if thread is not None:
                self.echoes.append(thread)

    def _render(self) -> str:
        elapsed = monotonic() - self.began
        attempts = getattr(self.executor, "attempts", 0)
        return f"mirakuru: starting {elapsed:.1f} s, attempt {attempts}: {self.what}"

    def _finish(self, code: int, outcome: str) -> Result:
        for thread in self.echoes:
            thread.join(1.0)
        executor = self.executor
        self.result.update(
            result=outcome,
            duration=round(monotonic() - self.began, 6),
            attempts=getattr(executor, "attempts", None),
            history=_history(executor, self.began),
            output_tail=list(executor.output_tail()),
        )
        return code, self.result

    def __call__(self) -> Result:
        """Run the whole thing; returns the exit status and the result for --json."""
        with SignalGuard().installed() as guard:
            try:
                failed = self._start()
                if failed is not None:
                    return failed
                code, outcome = self._main_phase()
                guard.shield()
            except Interrupted as interrupt:
                code, outcome = self._interrupted(interrupt.signum)
            return self._stop(code, outcome)

    def _interrupted(self, signum: int) -> tuple[int, str]:
        """The status for a signal: the normal end of serving, else 128 + its number."""
        elapsed = monotonic() - self.began
        if not self.started:
            self.console.error(
                f"interrupted after {elapsed:.3f} s, before {self.program} was ready"
            )
            return SIGNALLED + signum, "interrupted"
        self.console.info(f"stopping {self.program}")
        if self.args.then:
            return SIGNALLED + signum, "interrupted"
        return OK, "stopped"

    def _start_error(self, error: ExecutorError) -> tuple[int, str, str]:  # noqa: PLR0911 - one per cause
        """One message per cause of a failed start, with its exit status and outcome."""
        program = self.program
        if isinstance(error, OutputEnded):
            if error.exit_code is None:
                return START_FAILED, "exited", f"{program} closed its output before it was ready"
            how = _how_it_ended(error.exit_code)
            return (
                START_FAILED,
                "exited",
                f"{program} exited with {how} before it was ready"
                + (f" ({self.what} never matched)" if error.exit_code == 0 else ""),
            )
        if isinstance(error, LeftNothingRunning):
            message = f"{program} exited with status 0 and left nothing running"
            return START_FAILED, "exited", message
        if isinstance(error, TimeoutExpired):
            unmet = error.unmet or self.what
            return NOT_READY, "timeout", f"not ready after {self.args.timeout:g} s: {unmet}"
        if isinstance(error, ProcessExitedWithError):
            how = _how_it_ended(error.exit_code)
            return START_FAILED, "exited", f"{program} exited with {how} before it was ready"
        if isinstance(error, ExecutableNotFound):
            reason = error.strerror or "cannot be run"
            return START_FAILED, "not-found", f"cannot run {error.program}: {reason}"
        if isinstance(error, AlreadyRunning):
            return (
                START_FAILED,
                "already-running",
                f"{self.what} already answers before {program} was started:"
                " the port or path is taken (another instance still running?)",
            )
        return START_FAILED, "exited", f"could not start {program}: {error}"

    def _start(self) -> Result | None:
        console, executor = self.console, self.executor
        console.info(f"starting {self.result['service']}")
        try:
            if self.probe is None:
                executor.start()
            else:
                with live_status(console, self._render):
                    executor.start()
        except ExecutorError as error:
            code, outcome, message = self._start_error(error)
            if isinstance(error, TimeoutExpired):
                self.result["not_ready"] = error.unmet
            tail = list(error.output_tail)
            console.error(message + ("; last output:" if tail else ""), tail)
            return self._finish(code, outcome)
        self._follow_output()
        self.started = True
        after = monotonic() - self.began
        port = self.result["port"]
        on_port = f" on port {port}" if port else ""
        if self.probe is None:
            console.info(
                f"started {self.program}{on_port} (no readiness option given: not waiting)"
            )
        else:
            self.result["ready_after"] = round(after, 6)
            console.info(f"ready after {after:.3f} s{on_port}: {self.what}")
        return None

    def _main_phase(self) -> tuple[int, str]:
        args = self.args
        if args.then:
            then_began = monotonic()
            status = _run_then(args.then, args.stop_timeout, stdout_to_stderr=args.json)
            self.result["then"] = {
                "command": args.then,
                "exit_code": status,
                "duration": round(monotonic() - then_began, 6),
            }
            return status, "then"
        process = self.executor.process
        returncode = process.wait() if process is not None else 0
        if returncode == 0 and process is not None:
            # A launcher that daemonized: the service is what it left running.
            while anything_left(process, ENV_UUID, self.executor._uuid):
                time.sleep(_REMAINS_EVERY)
        tail = list(self.executor.output_tail())
        self.console.error(
            f"{self.program} exited on its own with {_how_it_ended(returncode)}"
            + ("; last output:" if tail else ""),
            tail,
        )
        return DIED, "died"

    def _stop(self, code: int, outcome: str) -> Result:
        executor = self.executor
        process = executor.process
        self.result["service_exit_status"] = None
        if outcome == "then" and process is not None and process.poll() is not None:
            self.console.error(
                f"warning: {self.program} exited during --then"
                f" ({_how_it_ended(process.returncode)})"
            )
        stop_began = monotonic()
        try:
            executor.stop()
        except ProcessFinishedWithError as error:
            self.result["service_exit_status"] = exit_status(error.exit_code)
            if outcome == "stopped":
                code, outcome = UNCLEAN_STOP, "unclean-stop"
                self.console.error(
                    f"{self.program} ended with {_how_it_ended(error.exit_code)} when stopped",
                    list(executor.output_tail()),
                )
        else:
            if process is not None and process.returncode is not None:
                self.result["service_exit_status"] = exit_status(process.returncode)
        stopping = monotonic() - stop_began
        self.result["stop_duration"] = round(stopping, 6)
        self.console.info(
            f"stopped {self.program} and its child processes in {stopping:.3f} s"
            f" (ran {monotonic() - self.began:.3f} s in all)"
        )
        return self._finish(code, outcome)


def run(
    args: argparse.Namespace, probe: Probe | None, port: int | None, console: Console
) -> Result:
    """``mirakuru run``: start the service, wait, serve or run ``--then``, stop the tree."""
    return _Run(args, probe, port, console)()
