"""The pieces of a running stack: each service's record and hooked executor, the failure,
the port variables, how a stop went."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core.stack import ServiceSpec, StackSpec, Status, build_probe, fill
from mirakuru.exceptions import ExecutorError

if TYPE_CHECKING:
    from mirakuru._stack_engine import StackRun

__all__ = [
    "OutputSink",
    "Slot",
    "StackFailed",
    "StatusSink",
    "build_service",
    "port_variable",
    "snapshot",
    "stopped",
    "why",
]

#: ``on_output(service, stream, line)``: a line the service printed ("stdout"/"stderr").
OutputSink = Callable[[str, str, str], None]
#: ``on_change(service, status, detail)``: a service's status changed.
StatusSink = Callable[[str, Status, str], None]


class StackFailed(Exception):
    """A service of the stack could not be started, or failed while it ran.

    ``service`` names it, ``reason`` says what happened, ``error`` is the executor's
    exception when there was one. By the time ``up()`` raises it, nothing is left running.
    """

    def __init__(self, service: str, reason: str, error: BaseException | None = None) -> None:
        super().__init__(service, reason, error)
        self.service = service
        self.reason = reason
        self.error = error

    def __str__(self) -> str:
        return f"service {self.service!r} {self.reason}"


def port_variable(name: str) -> str:
    """``MIRAKURU_<NAME>_PORT``: upper-cased, every other character an underscore."""
    cleaned = "".join(char if char.isascii() and char.isalnum() else "_" for char in name)
    return f"MIRAKURU_{cleaned.upper()}_PORT"


def stopped(executor: SimpleExecutor, unclean: int | None) -> str:
    """The detail of a STOPPED status: how long the stop took, or how it ended."""
    if unclean is not None:
        return f"ended with status {unclean} when stopped"
    report = executor.last_stop
    return f"in {report.duration:.3f} s" if report is not None and report.duration else ""


def why(error: BaseException) -> str:
    """The cause of a failed start in a few words (the executor error's class says most)."""
    from mirakuru.exceptions import (
        ExecutableNotFound,
        ProcessExitedWithError,
        TimeoutExpired,
    )

    if isinstance(error, TimeoutExpired):
        return f"was not ready within {error.timeout:g} s"
    if isinstance(error, ProcessExitedWithError):
        return f"exited with status {error.exit_code} before it was ready"
    if isinstance(error, ExecutableNotFound):
        return f"cannot be run: {error.strerror or error.program}"
    return f"could not be started: {type(error).__name__}: {error}"


@attrs.define(eq=False)
class Slot:
    """One service's live record (guarded by the run's condition)."""

    spec: ServiceSpec
    executor: SimpleExecutor
    must_complete: bool
    status: Status = Status.PENDING
    detail: str = ""
    restarts: int = 0
    exit_code: int | None = None
    spawned_at: float | None = None
    since: float | None = None  # wall clock, for uptime
    thread: threading.Thread | None = None
    stopping: bool = False  # this service alone is being stopped (see StackRun.remove)


class Hooked(SimpleExecutor):
    """An executor that asks the run before spawning and tells it of its exit."""

    _stack_run: StackRun
    _stack_name: str

    def _spawn(self) -> None:
        if self._stack_run._refuses(self):
            raise ExecutorError(self, "the stack is stopping")
        super()._spawn()
        self._stack_run._spawned(self)

    def _exited_on_its_own(self, code: int) -> None:
        self._stack_run._exited(self, code)
        super()._exited_on_its_own(code)


class HookedExecutor(Hooked, Executor):
    """A service with a readiness probe."""


def build_service(run: StackRun, spec: StackSpec, name: str, ports: Mapping[str, int]) -> Hooked:
    """The executor of service ``name`` of ``spec``, its placeholders filled from ``ports``."""
    service = spec.service(name)

    def text(value: str) -> str:
        return fill(value, name, ports)

    cwd = text(spec.resolved_cwd(name))
    options: dict[str, Any] = {
        "cwd": cwd,
        "timeout": service.timeout,
        "stop_timeout": service.stop_timeout,
        "envvars": {key: text(value) for key, value in service.env},
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    command = [text(part) for part in service.command]
    executor: Hooked
    if service.ready is None:
        executor = Hooked(command, **options)
    else:
        probe = build_probe(service.ready, cwd, text)
        executor = HookedExecutor(command, ready=probe, **options)
    executor._stack_run = run
    executor._stack_name = name
    executor.port = ports.get(name)  # type: ignore[attr-defined]
    return executor


def snapshot(slots: Iterable[tuple[str, Slot]], ports: Mapping[str, int]) -> dict[str, Any]:
    """Each service's status, PID, port, uptime and restarts, for ``status``."""
    now = time.time()
    document = {}
    for name, slot in slots:
        process = slot.executor.process
        alive = process is not None and slot.status not in (Status.COMPLETED, Status.STOPPED)
        document[name] = {
            "status": slot.status.value,
            "detail": slot.detail,
            "pid": process.pid if alive and process is not None else None,
            "port": ports.get(name),
            "since": slot.since if alive else None,
            "uptime": round(now - slot.since, 3) if slot.since and alive else None,
            "restarts": slot.restarts,
        }
    return document
