"""The two commands: ``wait`` for a service, and ``run`` one from start to stop."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Self

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.teardown.remains import anything_left
from mirakuru.base import ENV_UUID, Executor, SimpleExecutor
from mirakuru.cli.args import (
    CANNOT_EXECUTE,
    DIED,
    NOT_FOUND,
    NOT_READY,
    OK,
    SIGNALLED,
    START_FAILED,
    UNCLEAN_STOP,
)
from mirakuru.cli.children import (
    Interrupted,
    SignalGuard,
    exit_status,
    how_it_ended,
    run_then,
    unrunnable,
)
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

__all__ = ["Interrupted", "SignalGuard", "exit_status", "run", "wait"]

Result = tuple[int, dict[str, Any]]
#: How often ``run`` looks whether a daemonized service (its launcher exited 0) still runs.
_REMAINS_EVERY = 0.25
#: How long ``wait``'s COMMAND may take to end after we pass it SIGTERM on an interruption.
WAIT_GRACE = 10.0


def _attempts(count: int) -> str:
    """``1 attempt``, ``49 attempts``."""
    return f"{count} attempt" + ("" if count == 1 else "s")


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
    """``mirakuru wait``: poll ``probe`` until it holds or ``--timeout`` passes.

    With ``-- COMMAND``, run it once ready and exit with its status (wait-for-it's way).
    """
    began = monotonic()
    attempts = 0
    what = describe(probe)

    def count(attempt_number: int) -> None:
        nonlocal attempts
        attempts = attempt_number

    def render() -> str:
        return f"mirakuru: waiting {monotonic() - began:.1f} s, attempt {attempts}: {what}"

    result: dict[str, Any] = {"probe": what, "attempts": 0, "then": None}
    cannot = unrunnable(args.command[0]) if args.command else None
    if cannot is not None:
        # Said before the wait, not after it: a typo should not cost the whole --timeout.
        why = "not found" if cannot == NOT_FOUND else "not executable"
        console.error(f"cannot run {args.command[0]}: {why}")
        result.update(result="not-found", duration=0.0)
        return cannot, result
    with SignalGuard().installed():
        try:
            with live_status(console, render):
                outcome = wait_for_probe(probe, args.timeout, on_attempt=count)
            duration = monotonic() - began
            result.update(attempts=attempts, duration=round(duration, 6))
            if not outcome.ready:
                console.error(f"not ready after {args.timeout:g} s ({_attempts(attempts)}): {what}")
                result["result"] = "timeout"
                return NOT_READY, result
            console.info(f"ready after {duration:.3f} s ({_attempts(attempts)}): {what}")
            result["result"] = "ready"
            if not args.command:
                return OK, result
            result["result"] = "then"
            status = _wait_then(args, result, console)
            result["duration"] = round(monotonic() - began, 6)
            return status, result
        except Interrupted as interrupt:
            ready = result.get("result") == "then"
            console.error(
                f"interrupted after {monotonic() - began:.3f} s"
                + ("" if ready else f", not ready: {what}")
            )
            result.update(result="interrupted", duration=round(monotonic() - began, 6))
            if not ready:
                result["attempts"] = attempts
            return SIGNALLED + interrupt.signum, result


def _wait_then(args: argparse.Namespace, result: dict[str, Any], console: Console) -> int:
    """Run ``wait``'s COMMAND (no shell, our stdin); its exit status, as a shell gives it."""
    began = monotonic()
    try:
        status = run_then(args.command, WAIT_GRACE, stdout_to_stderr=args.json)
    except OSError as error:
        status = NOT_FOUND if isinstance(error, FileNotFoundError) else CANNOT_EXECUTE
        console.error(f"cannot run {args.command[0]}: {error.strerror or error}")
    result["then"] = {
        "command": shlex.join(args.command),
        "exit_code": status,
        "duration": round(monotonic() - began, 6),
    }
    return status


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

    def _join_echoes(self) -> None:
        for thread in self.echoes:
            thread.join(1.0)

    def _finish(self, code: int, outcome: str) -> Result:
        self._join_echoes()
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
            how = how_it_ended(error.exit_code)
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
            how = how_it_ended(error.exit_code)
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
            if self.echoes:
                # Its output was copied to stderr as it came: let the copy finish (bounded)
                # so the message comes last, and do not print the same lines again.
                self._join_echoes()
                console.error(message)
            else:
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
            status = run_then(args.then, args.stop_timeout, stdout_to_stderr=args.json)
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
            f"{self.program} exited on its own with {how_it_ended(returncode)}"
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
                f"warning: {self.program} exited during --then ({how_it_ended(process.returncode)})"
            )
        stop_began = monotonic()
        try:
            executor.stop()
        except ProcessFinishedWithError as error:
            self.result["service_exit_status"] = exit_status(error.exit_code)
            if outcome == "stopped":
                code, outcome = UNCLEAN_STOP, "unclean-stop"
                self.console.error(
                    f"{self.program} ended with {how_it_ended(error.exit_code)} when stopped",
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
