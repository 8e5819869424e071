"""Running a stack: one thread per service starts it once its dependencies' conditions hold,
watches it (restarting it on failure when asked), and the stack stops in reverse order.

Each service is an ordinary executor (its probe, its teardown, its watchdog registration)
with two hooks: it refuses to spawn once the stack (or that service) is stopping, which
closes the race between a late start and the stop, and it reports its exit, so a crash is
seen at once. A run can grow and shrink while it runs (:meth:`StackRun.add`,
:meth:`StackRun.remove`): the supervisor that keeps services between test runs does both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from mirakuru._stack_parts import (
    Hooked,
    OutputSink,
    Slot,
    StackFailed,
    StatusSink,
    build_service,
    port_variable,
    snapshot,
    stopped,
    why,
)
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.ports import free_port
from mirakuru.base import SimpleExecutor
from mirakuru.core.stack import (
    UP,
    Condition,
    ServiceSpec,
    StackSpec,
    Status,
    UnknownService,
    holds,
    placeholders,
    port_of,
    restart_delay,
)
from mirakuru.exceptions import ProcessFinishedWithError

__all__ = ["OutputSink", "StackFailed", "StackRun", "StatusSink", "port_variable"]

#: How long stop() waits for a service's thread (its start() was cut short) to end.
_JOIN = 5.0
#: A dependency in one of these will not come back by itself: its dependents give up.
_GONE = frozenset({Status.FAILED, Status.STOPPING, Status.STOPPED})


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
        self._check(spec, wanted)
        self.spec = spec
        self._reservations = reservations
        self._on_output = on_output
        self._on_change = on_change
        self._cond = threading.Condition()
        self.stopping = False
        self.failure: StackFailed | None = None
        self.began = monotonic()
        self.ports: dict[str, int] = {}
        self._remembered: dict[str, int] = {}  # the ports of removed services, for a return
        self._followers: list[threading.Thread] = []
        self._slots: dict[str, Slot] = {}
        self.order: tuple[str, ...] = ()
        self._prepare(spec.order(wanted or None))

    # -- building ---------------------------------------------------------------------------

    @staticmethod
    def _check(spec: StackSpec, names: Iterable[str]) -> None:
        for name in names:
            if name not in spec.names:
                raise UnknownService(spec.source, name, f"no service {name!r} in the file")

    def _prepare(self, wanted: Iterable[str]) -> list[Slot]:
        """Slots (and ports) for the services of ``wanted`` that this run has none for."""
        new = [name for name in wanted if name not in self._slots]
        self._choose_ports(new)
        services = [slot.spec for slot in self._slots.values()]
        services += [self.spec.service(name) for name in new]
        completes = {
            dependency
            for service in services
            for dependency, condition in service.depends_on
            if condition is Condition.COMPLETED
        }
        slots = [
            Slot(self.spec.service(name), self._build(name), name in completes) for name in new
        ]
        with self._cond:
            self._slots.update((slot.spec.name, slot) for slot in slots)
            self.order = (*self.order, *new)
        return slots

    def _choose_ports(self, names: Iterable[str]) -> None:
        needed: set[str] = set()
        for name in names:
            for _, text in self.spec.service(name).texts():
                for placeholder in placeholders(text):
                    other = port_of(placeholder)
                    if other is not None:
                        needed.add(other or name)
        for name in self.spec.names:
            if name in needed and name not in self.ports:
                remembered = self._remembered.pop(name, None)
                self.ports[name] = remembered or free_port(self._reservations)

    def _build(self, name: str) -> SimpleExecutor:
        return build_service(self, self.spec, name, self.ports)

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

    def spec_of(self, name: str) -> ServiceSpec:
        """The declaration service ``name`` was started from (the run's spec may be newer)."""
        return self._slots[name].spec

    def environment(self) -> dict[str, str]:
        """``MIRAKURU_<NAME>_PORT`` for every service that has a port."""
        return {port_variable(name): str(port) for name, port in self.ports.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each service's status, PID, port, uptime and restarts, for ``status``."""
        with self._cond:
            slots = list(self._slots.items())
        return snapshot(slots, self.ports)

    # -- status changes -----------------------------------------------------------------------

    def _set(self, slot: Slot, status: Status, detail: str = "") -> None:
        # The sink is told under the lock, so it hears the changes in the order they happen.
        with self._cond:
            if slot.status is status and slot.detail == detail:
                return
            slot.status, slot.detail = status, detail
            self._cond.notify_all()
            if self._on_change is not None:
                self._on_change(slot.spec.name, status, detail)

    def _fail(self, slot: Slot, reason: str, error: BaseException | None = None) -> None:
        with self._cond:
            if self.failure is None:
                self.failure = StackFailed(slot.spec.name, reason, error)
        self._set(slot, Status.FAILED, reason)

    def _slot_of(self, executor: Hooked) -> Slot | None:
        slot = self._slots.get(executor._stack_name)
        return slot if slot is not None and slot.executor is executor else None

    def _halted(self, slot: Slot) -> bool:
        return self.stopping or slot.stopping

    def _refuses(self, executor: Hooked) -> bool:
        slot = self._slot_of(executor)
        return slot is None or self._halted(slot)

    def _spawned(self, executor: Hooked) -> None:
        """Called by the executor, under its lock, right after its process exists."""
        slot = self._slot_of(executor)
        if slot is None:
            return
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
                    self._follow(slot.spec.name, stream, reader)

    def _follow(self, name: str, stream: str, reader: IO[str]) -> None:
        sink = self._on_output
        assert sink is not None

        def copy() -> None:
            with contextlib.suppress(OSError, ValueError):  # the spool was released
                for line in reader:
                    sink(name, stream, line.rstrip("\n"))

        thread = threading.Thread(target=copy, name=f"mirakuru-stack-{name}-{stream}", daemon=True)
        # A kept service may restart all afternoon: forget the copiers that are done.
        self._followers = [follower for follower in self._followers if follower.is_alive()]
        self._followers.append(thread)
        thread.start()

    def _exited(self, executor: Hooked, code: int) -> None:
        """On the reactor's thread: a started service's process exited."""
        with self._cond:
            slot = self._slot_of(executor)
            if slot is not None:
                slot.exit_code = code
                self._cond.notify_all()

    # -- starting -----------------------------------------------------------------------------

    def start(self) -> StackRun:
        """Start every service, each once its dependencies' conditions hold; wait until all
        are up. On a failure, stop what started and raise :class:`StackFailed`."""
        self._launch(list(self._slots.values()), whole=True)
        return self

    def add(self, names: Iterable[str], spec: StackSpec | None = None) -> tuple[str, ...]:
        """Start ``names`` and what they need that this run does not run yet; return once
        they are up, with the names started (dependencies first).

        ``spec`` replaces the declaration new services are built from (those running keep
        theirs). On a failure, what this call started is stopped, the rest runs on, and
        :class:`StackFailed` is raised.
        """
        wanted = list(names)
        self._check(spec or self.spec, wanted)
        with self._cond:
            if self.stopping:
                raise StackFailed(wanted[0] if wanted else "?", "was not started: stopping")
            if spec is not None:
                self.spec = spec
            self.failure = None
        new = self._prepare(self.spec.order(wanted))
        self._launch(new, whole=False)
        return tuple(slot.spec.name for slot in new)

    def _launch(self, slots: list[Slot], whole: bool) -> None:
        names = [slot.spec.name for slot in slots]
        for slot in slots:
            slot.thread = threading.Thread(
                target=self._serve, args=(slot,), name=f"mirakuru-stack-{slot.spec.name}"
            )
            slot.thread.daemon = True
            slot.thread.start()

        def settled() -> bool:
            return self.failure is not None or all(s.status in UP for s in slots)

        try:
            with self._cond:
                while not self._cond.wait_for(settled, timeout=0.5):
                    pass
        except BaseException:
            self.stop() if whole else self.remove(names)
            raise
        failure = self.failure
        if failure is None:
            return
        if whole:
            self.stop()
        else:
            self.remove(names)
            with self._cond:
                if self.failure is failure and failure.service in names:
                    self.failure = None  # it is gone with what this call started
        raise failure

    def _serve(self, slot: Slot) -> None:
        try:
            if self._await_dependencies(slot):
                while self._run_once(slot):
                    pass
        except BaseException as error:  # a bug here must still fail the stack, not hang it
            self._fail(slot, f"could not be run: {error!r}", error)

    def _await_dependencies(self, slot: Slot) -> bool:
        needs = [(self._slots[name], condition) for name, condition in slot.spec.depends_on]

        def met() -> bool:
            if self._halted(slot) or self.failure is not None:
                return True
            if any(need.status in _GONE for need, _ in needs):
                return True
            return all(holds(condition, need.status) for need, condition in needs)

        with self._cond:
            while not self._cond.wait_for(met, timeout=1.0):
                pass
            if self._halted(slot) or self.failure is not None:
                return False
            gone = [need for need, _ in needs if need.status in _GONE]
        if gone:
            need = gone[0]
            self._fail(slot, f"cannot start: {need.spec.name} is {need.status.value}")
            return False
        return True

    def _run_once(self, slot: Slot) -> bool:
        """Start the service and watch it; True to start it again (a restart)."""
        executor = slot.executor
        try:
            executor.start()
        except Exception as error:
            if not self._halted(slot):
                self._fail(slot, why(error), error)
            return False
        if slot.spec.ready is not None:
            took = monotonic() - (slot.spawned_at or self.began)
            self._set(slot, Status.READY, f"after {took:.3f} s")
        limit = slot.spec.timeout if slot.must_complete else None
        deadline = None if limit is None else monotonic() + limit
        with self._cond:
            while not (self._halted(slot) or slot.exit_code is not None):
                left = None if deadline is None else deadline - monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(1.0 if left is None else min(left, 1.0))
            code = slot.exit_code
        if self._halted(slot):
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
                self._cond.wait_for(lambda: self._halted(slot), timeout=pause)
            return not self._halted(slot)
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

    def _stop_slot(self, slot: Slot, unclean: dict[str, int]) -> None:
        name, executor = slot.spec.name, slot.executor
        if executor.process is None:
            if slot.status is not Status.PENDING:
                self._set(slot, Status.STOPPED, slot.detail)
            return
        broken = slot.status in (Status.FAILED, Status.RESTARTING)
        self._set(slot, Status.STOPPING)
        try:
            executor.kill() if broken else executor.stop()
        except ProcessFinishedWithError as error:
            unclean[name] = error.exit_code
        except Exception as error:  # every service is tried, whatever one does
            unclean[name] = -1
            slot.detail = f"could not be stopped: {error}"
        self._set(slot, Status.STOPPED, stopped(executor, unclean.get(name)))

    def _join(self, slots: Iterable[Slot]) -> None:
        for slot in slots:
            if slot.thread is not None and slot.thread is not threading.current_thread():
                slot.thread.join(_JOIN)

    def stop(self) -> dict[str, int]:
        """Stop every service, dependents before their dependencies; wait for each.

        Returns the services that ended with an unexpected exit status when stopped.
        """
        with self._cond:
            self.stopping = True
            self._cond.notify_all()
        unclean: dict[str, int] = {}
        for name in reversed(self.order):
            self._stop_slot(self._slots[name], unclean)
        self._join(list(self._slots.values()))
        for follower in self._followers:
            follower.join(1.0)
        return unclean

    def dependents(self, names: Iterable[str]) -> set[str]:
        """``names`` (those this run has) and every service of the run that needs them."""
        with self._cond:
            chosen = {name for name in names if name in self._slots}
            while True:
                more = {
                    name
                    for name, slot in self._slots.items()
                    if name not in chosen and chosen.intersection(slot.spec.dependencies)
                }
                if not more:
                    return chosen
                chosen |= more

    def remove(self, names: Iterable[str], *, dependents: bool = True) -> tuple[str, ...]:
        """Stop ``names`` (with what depends on them, unless told not to) and forget them,
        while the rest runs on. Returns the names stopped, in the order they were."""
        wanted = set(names)
        chosen = self.dependents(wanted) if dependents else wanted & set(self._slots)
        with self._cond:
            for name in chosen:
                self._slots[name].stopping = True
            self._cond.notify_all()
            ordered = tuple(name for name in reversed(self.order) if name in chosen)
        unclean: dict[str, int] = {}
        slots = [self._slots[name] for name in ordered]
        for slot in slots:
            self._stop_slot(slot, unclean)
        self._join(slots)
        with self._cond:
            for name in ordered:
                del self._slots[name]
                if name in self.ports:
                    self._remembered[name] = self.ports.pop(name)
            self.order = tuple(name for name in self.order if name not in chosen)
            self._cond.notify_all()
        return ordered
