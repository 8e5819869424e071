"""A parsed stack: frozen values for the services of a ``mirakuru.toml`` and their dependencies.

Values here are exactly what the file says, with defaults filled in and placeholders such as
``{port}`` left in place: ports are chosen when the stack starts, not when it is read.
"""

from __future__ import annotations

import enum
import hashlib
import json
import posixpath
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "UP",
    "Condition",
    "ReadySpec",
    "Restart",
    "ServiceSpec",
    "StackSpec",
    "Status",
    "holds",
    "restart_delay",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_MAX_RESTARTS = 5
#: The first pause before a restart, doubled after each one up to the longest pause.
FIRST_RESTART_DELAY = 0.5
LONGEST_RESTART_DELAY = 8.0


class Condition(enum.Enum):
    """What a dependent waits for: spawned, its probe passed, or (a job) exited with 0."""

    STARTED = "started"
    READY = "ready"
    COMPLETED = "completed"


class Restart(enum.Enum):
    """Whether a service that exits non-zero while running is started again."""

    NO = "no"
    ON_FAILURE = "on-failure"


class Status(enum.Enum):
    """Where one service of a running stack is."""

    PENDING = "pending"  # waiting for its dependencies
    STARTING = "starting"  # spawned, its probe not passed yet
    RUNNING = "running"  # spawned, and it has no probe to pass
    READY = "ready"  # its probe passed
    COMPLETED = "completed"  # exited with status 0
    RESTARTING = "restarting"  # exited non-zero, to be started again after a pause
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


_SPAWNED = frozenset({Status.STARTING, Status.RUNNING, Status.READY, Status.COMPLETED})
#: The statuses in which a service counts as up, for ``up`` to return.
UP = frozenset({Status.RUNNING, Status.READY, Status.COMPLETED})


def holds(condition: Condition, status: Status) -> bool:
    """Whether a dependency in ``status`` satisfies a dependent waiting for ``condition``.

    A restarting service satisfies nothing: its dependents wait until it is back.
    """
    if condition is Condition.STARTED:
        return status in _SPAWNED
    if condition is Condition.READY:
        return status is Status.READY
    return status is Status.COMPLETED


def restart_delay(restarts_so_far: int) -> float:
    """Seconds to wait before the next restart: 0.5, 1, 2, 4, 8, 8, ..."""
    delay: float = FIRST_RESTART_DELAY * 2.0 ** min(restarts_so_far, 16)
    return min(delay, LONGEST_RESTART_DELAY)


@attrs.frozen(slots=True)
class ReadySpec:
    """The ``ready`` table as written; several entries must all hold."""

    tcp: str | None = None
    http: str | None = None
    status: int | str | None = None
    method: str | None = None
    output: str | None = None
    pid_file: str | None = None
    unix_socket: str | None = None
    notify: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The table as TOML would hold it (unset entries left out)."""
        table = {
            field.name: getattr(self, field.name)
            for field in attrs.fields(ReadySpec)
            if getattr(self, field.name) not in (None, False)
        }
        return table


@attrs.frozen(slots=True)
class ServiceSpec:
    """One ``[services.NAME]`` table."""

    name: str
    command: tuple[str, ...]
    ready: ReadySpec | None = None
    depends_on: tuple[tuple[str, Condition], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    restart: Restart = Restart.NO
    max_restarts: int = DEFAULT_MAX_RESTARTS

    @property
    def dependencies(self) -> tuple[str, ...]:
        """The names this service waits for, in the order written."""
        return tuple(name for name, _ in self.depends_on)

    def texts(self) -> Iterable[tuple[str, str]]:
        """Every text field that may hold placeholders, with its key below the service."""
        for index, part in enumerate(self.command):
            yield f"command[{index}]", part
        for key, value in self.env:
            yield f"env.{key}", value
        if self.cwd is not None:
            yield "cwd", self.cwd
        if self.ready is not None:
            for key, value in self.ready.to_dict().items():
                if isinstance(value, str):
                    yield f"ready.{key}", value

    def to_dict(self) -> dict[str, Any]:
        """The service's table as TOML would hold it; parsing it gives this value back."""
        table: dict[str, Any] = {"command": list(self.command)}
        if self.ready is not None:
            table["ready"] = self.ready.to_dict()
        if self.depends_on:
            table["depends_on"] = {name: cond.value for name, cond in self.depends_on}
        if self.env:
            table["env"] = dict(self.env)
        if self.cwd is not None:
            table["cwd"] = self.cwd
        if self.timeout != DEFAULT_TIMEOUT:
            table["timeout"] = self.timeout
        if self.stop_timeout != DEFAULT_STOP_TIMEOUT:
            table["stop_timeout"] = self.stop_timeout
        if self.restart is not Restart.NO:
            table["restart"] = self.restart.value
        if self.max_restarts != DEFAULT_MAX_RESTARTS:
            table["max_restarts"] = self.max_restarts
        return table


@attrs.frozen(slots=True)
class StackSpec:
    """Every service of one stack file, in the order the file declares them.

    ``source`` is the file's path and ``root`` its directory, against which each
    service's ``cwd`` is resolved.
    """

    source: str
    root: str
    services: tuple[ServiceSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The services' names, in file order."""
        return tuple(service.name for service in self.services)

    def service(self, name: str) -> ServiceSpec:
        """The service called ``name`` (KeyError if there is none)."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def order(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """``names`` (default: all) and everything they depend on, dependencies first.

        Among services that do not depend on each other, file order is kept. The stack
        must be acyclic, which parsing guarantees.
        """
        wanted = list(self.names if names is None else names)
        needed: set[str] = set()
        while wanted:
            name = wanted.pop()
            if name not in needed:
                needed.add(name)
                wanted.extend(self.service(name).dependencies)
        placed: list[str] = []
        done: set[str] = set()

        def place(name: str) -> None:
            if name in done:
                return
            done.add(name)
            for dependency in self.service(name).dependencies:
                place(dependency)
            placed.append(name)

        for name in self.names:
            if name in needed:
                place(name)
        return tuple(placed)

    def resolved_cwd(self, name: str) -> str:
        """The directory service ``name`` runs in: its ``cwd`` relative to the file's."""
        cwd = self.service(name).cwd
        return posixpath.normpath(posixpath.join(self.root, cwd)) if cwd else self.root

    def to_dict(self) -> dict[str, Any]:
        """The whole declaration as ``tomllib`` would return it."""
        return {"services": {service.name: service.to_dict() for service in self.services}}

    def fingerprint(self, name: str, version: str) -> str:
        """A stable hex digest identifying how service ``name`` is defined.

        It covers the command, the environment, the resolved working directory, the
        readiness probe, the names and conditions of its dependencies, and ``version``
        (pass the package's ``__version__``): two runs whose digests are equal start the
        same thing. Ports are placeholders here, so choosing other ports changes nothing.
        """
        service = self.service(name)
        identity = {
            "command": list(service.command),
            "env": sorted(service.env),
            "cwd": self.resolved_cwd(name),
            "ready": service.ready.to_dict() if service.ready is not None else None,
            "depends_on": sorted((dep, cond.value) for dep, cond in service.depends_on),
            "version": version,
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
