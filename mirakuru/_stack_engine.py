"""Running a stack: one thread per service starts it once its dependencies' conditions hold,
watches it (restarting it on failure when asked), and the stack stops in reverse order.

Each service is an ordinary executor (its probe, its teardown, its watchdog registration)
with two hooks: it refuses to spawn once the stack is stopping, which closes the race
between a late start and the stop, and it reports its exit, so a crash is seen at once.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import attrs

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.ports import free_port
from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core.stack import (
    UP,
    Condition,
    ServiceSpec,
    StackSpec,
    Status,
    UnknownService,
    build_probe,
    fill,
    holds,
    placeholders,
    port_of,
    restart_delay,
)
from mirakuru.exceptions import ExecutorError, ProcessFinishedWithError

__all__ = ["OutputSink", "StackFailed", "StackRun", "StatusSink", "port_variable"]

#: ``on_output(service, stream, line)``: a line the service printed ("stdout"/"stderr").
OutputSink = Callable[[str, str, str], None]
#: ``on_change(service, status, detail)``: a service's status changed.
StatusSink = Callable[[str, Status, str], None]
#: How long stop() waits for a service's thread (its start() was cut short) to end.
_JOIN = 5.0


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


@attrs.define(eq=False)
class _Slot:
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


class _Hooked(SimpleExecutor):
    """An executor that asks the run before spawning and tells it of its exit."""

    _stack_run: StackRun
    _stack_name: str

    def _spawn(self) -> None:
        if self._stack_run.stopping:
            raise ExecutorError(self, "the stack is stopping")
        super()._spawn()
        self._stack_run._spawned(self._stack_name)

    def _exited_on_its_own(self, code: int) -> None:
        self._stack_run._exited(self._stack_name, code)
        super()._exited_on_its_own(code)


class _HookedExecutor(_Hooked, Executor):
    """A service with a readiness probe."""


class StackRun(Mapping[str, SimpleExecutor]):
    """The services of one ``up``: a mapping of name to executor, in start order."""

    def __init__(
        self,
        spec: StackSpec,
        names: Iterable[str] = (),
        *,
        reservations: str | None = None,
        on_output: OutputSink | None = None,
        on_change: StatusSink | None = None,
    ) -> None:
        wanted = list(names)
        for name in wanted:
            if name not in spec.names:
                raise UnknownService(spec.source, name, f"no service {name!r} in the file")
        self.spec = spec
        self.order = spec.order(wanted or None)
        self._on_output = on_output
        self._on_change = on_change
        self._cond = threading.Condition()
        self.stopping = False
        self.failure: StackFailed | None = None
        self.began = monotonic()
        self.ports = self._choose_ports(reservations)
        self._followers: list[threading.Thread] = []
        completes = {
            dependency
            for name in self.order
            for dependency, condition in spec.service(name).depends_on
            if condition is Condition.COMPLETED
        }
        self._slots = {
            name: _Slot(spec.service(name), self._build(name), name in completes)
            for name in self.order
        }

    # -- building ---------------------------------------------------------------------------

    def _choose_ports(self, reservations: str | None) -> dict[str, int]:
        needed: set[str] = set()
        for name in self.order:
            for _, text in self.spec.service(name).texts():
                for placeholder in placeholders(text):
                    other = port_of(placeholder)
                    if other is not None:
                        needed.add(other or name)
        return {name: free_port(reservations) for name in self.spec.names if name in needed}

    def _build(self, name: str) -> SimpleExecutor:
        service = self.spec.service(name)

        def text(value: str) -> str:
            return fill(value, name, self.ports)

        cwd = text(self.spec.resolved_cwd(name))
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
        executor: _Hooked
        if service.ready is None:
            executor = _Hooked(command, **options)
        else:
            probe = build_probe(service.ready, cwd, text)
            executor = _HookedExecutor(command, ready=probe, **options)
        executor._stack_run = self
        executor._stack_name = name
        executor.port = self.ports.get(name)  # type: ignore[attr-defined]
        return executor

    # -- the mapping --------------------------------------------------------------------------

    def __getitem__(self, name: str) -> SimpleExecutor:
        return self._slots[name].executor

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def status(self, name: str) -> Status:
        """Where service ``name`` is now."""
        return self._slots[name].status

    def environment(self) -> dict[str, str]:
        """``MIRAKURU_<NAME>_PORT`` for every service that has a port."""
        return {port_variable(name): str(port) for name, port in self.ports.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each service's status, PID, port, uptime and restarts, for ``status``."""
        now = time.time()
        with self._cond:
            slots = list(self._slots.items())
        document = {}
        for name, slot in slots:
            process = slot.executor.process
            alive = process is not None and slot.status not in (Status.COMPLETED, Status.STOPPED)
            document[name] = {
                "status": slot.status.value,
                "detail": slot.detail,
                "pid": process.pid if alive and process is not None else None,
                "port": self.ports.get(name),
                "since": slot.since if alive else None,
                "uptime": round(now - slot.since, 3) if slot.since and alive else None,
                "restarts": slot.restarts,
            }
        return document

    # -- status changes -----------------------------------------------------------------------

    def _set(self, slot: _Slot, status: Status, detail: str = "") -> None:
        # The sink is told under the lock, so it hears the changes in the order they happen.
        with self._cond:
            if slot.status is status and slot.detail == detail:
                return
            slot.status, slot.detail = status, detail
            self._cond.notify_all()
            if self._on_change is not None:
                self._on_change(slot.spec.name, status, detail)

    def _fail(self, slot: _Slot, reason: str, error: BaseException | None = None) -> None:
        with self._cond:
            if self.failure is None:
                self.failure = StackFailed(slot.spec.name, reason, error)
        self._set(slot, Status.FAILED, reason)

    def _spawned(self, name: str) -> None:
        """Called by the executor, under its lock, right after its process exists."""
        slot = self._slots[name]
        slot.spawned_at, slot.since = monotonic(), time.time()
        process = slot.executor.process
        pid = f"PID {process.pid}" if process is not None else ""
        self._set(slot, Status.STARTING if slot.spec.ready else Status.RUNNING, pid)
        if self._on_output is not None:
            for stream, reader in (
                ("stdout", slot.executor.output()),
                ("stderr", slot.executor.err_output()),
            ):
                if reader is not None:
                    self._follow(name, stream, reader)

    def _follow(self, name: str, stream: str, reader: IO[str]) -> None:
        sink = self._on_output
        assert sink is not None

        def copy() -> None:
            with contextlib.suppress(OSError, ValueError):  # the spool was released
                for line in reader:
                    sink(name, stream, line.rstrip("\n"))

        thread = threading.Thread(target=copy, name=f"mirakuru-stack-{name}-{stream}", daemon=True)
        self._followers.append(thread)
        thread.start()

    def _exited(self, name: str, code: int) -> None:
        """On the reactor's thread: a started service's process exited."""
        slot = self._slots[name]
        with self._cond:
            slot.exit_code = code
            self._cond.notify_all()

    # -- starting -----------------------------------------------------------------------------

    def start(self) -> StackRun:
        """Start every service, each once its dependencies' conditions hold; wait until all
        are up. On a failure, stop what started and raise :class:`StackFailed`."""
        for slot in self._slots.values():
            slot.thread = threading.Thread(
                target=self._serve, args=(slot,), name=f"mirakuru-stack-{slot.spec.name}"
            )
            slot.thread.daemon = True
            slot.thread.start()
        try:
            with self._cond:
                while not self._cond.wait_for(self._settled, timeout=0.5):
                    pass
        except BaseException:
            self.stop()
            raise
        if self.failure is not None:
            failure = self.failure
            self.stop()
            raise failure
        return self

    def _settled(self) -> bool:
        return self.failure is not None or all(s.status in UP for s in self._slots.values())

    def _serve(self, slot: _Slot) -> None:
        try:
            if self._await_dependencies(slot):
                while self._run_once(slot):
                    pass
        except BaseException as error:  # a bug here must still fail the stack, not hang it
            self._fail(slot, f"could not be run: {error!r}", error)

    def _await_dependencies(self, slot: _Slot) -> bool:
        needs = [(self._slots[name], condition) for name, condition in slot.spec.depends_on]

        def met() -> bool:
            if self.stopping or self.failure is not None:
                return True
            return all(holds(condition, need.status) for need, condition in needs)

        with self._cond:
            while not self._cond.wait_for(met, timeout=1.0):
                pass
            return not (self.stopping or self.failure is not None)

    def _run_once(self, slot: _Slot) -> bool:
        """Start the service and watch it; True to start it again (a restart)."""
        executor = slot.executor
        try:
            executor.start()
        except Exception as error:
            if not self.stopping:
                self._fail(slot, _why(error), error)
            return False
        if slot.spec.ready is not None:
            took = monotonic() - (slot.spawned_at or self.began)
            self._set(slot, Status.READY, f"after {took:.3f} s")
        limit = slot.spec.timeout if slot.must_complete else None
        deadline = None if limit is None else monotonic() + limit
        with self._cond:
            while not (self.stopping or slot.exit_code is not None):
                left = None if deadline is None else deadline - monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(1.0 if left is None else min(left, 1.0))
            code = slot.exit_code
        if self.stopping:
            return False
        if code is None:
            self._fail(slot, f"did not complete within {limit:g} s")
            return False
        if code == 0:
            self._set(slot, Status.COMPLETED, "exited with status 0")
            return False
        spec = slot.spec
        if spec.restart.value == "on-failure" and slot.restarts < spec.max_restarts:
            pause = restart_delay(slot.restarts)
            self._set(slot, Status.RESTARTING, f"exited with status {code}; again in {pause:g} s")
            with contextlib.suppress(Exception):
                executor.kill()
            with self._cond:
                slot.exit_code = None
                slot.restarts += 1
                self._cond.wait_for(lambda: self.stopping, timeout=pause)
            return not self.stopping
        after = f" after {slot.restarts} restarts" if slot.restarts else ""
        self._fail(slot, f"exited on its own with status {code}{after}")
        return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a service failed or none is left running (True), or ``timeout``."""
        idle = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED})

        def done() -> bool:
            if self.failure is not None:
                return True
            return all(slot.status in idle for slot in self._slots.values())

        with self._cond:
            return self._cond.wait_for(done, timeout)

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> dict[str, int]:
        """Stop every service, dependents before their dependencies; wait for each.

        Returns the services that ended with an unexpected exit status when stopped.
        """
        with self._cond:
            self.stopping = True
            self._cond.notify_all()
        unclean: dict[str, int] = {}
        for name in reversed(self.order):
            slot = self._slots[name]
            executor = slot.executor
            if executor.process is None:
                if slot.status is not Status.PENDING:
                    self._set(slot, Status.STOPPED, slot.detail)
                continue
            broken = slot.status in (Status.FAILED, Status.RESTARTING)
            self._set(slot, Status.STOPPING)
            try:
                executor.kill() if broken else executor.stop()
            except ProcessFinishedWithError as error:
                unclean[name] = error.exit_code
            except Exception as error:  # every service is tried, whatever one does
                unclean[name] = -1
                slot.detail = f"could not be stopped: {error}"
            self._set(slot, Status.STOPPED, _stopped(executor, unclean.get(name)))
        for slot in self._slots.values():
            if slot.thread is not None and slot.thread is not threading.current_thread():
                slot.thread.join(_JOIN)
        for follower in self._followers:
            follower.join(1.0)
        return unclean


def _stopped(executor: SimpleExecutor, unclean: int | None) -> str:
    if unclean is not None:
        return f"ended with status {unclean} when stopped"
    report = executor.last_stop
    return f"in {report.duration:.3f} s" if report is not None and report.duration else ""


def _why(error: BaseException) -> str:
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
