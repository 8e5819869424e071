"""Reading a stack declaration (the dict ``tomllib`` returns) into a :class:`StackSpec`.

Everything that can be checked without starting anything is checked here, in file order:
the keys and the types of every table, then the names that tables refer to (dependencies,
placeholders), then the probes each ``ready`` table makes, then cycles. The first mistake is
raised as a typed :class:`~mirakuru.core.stack.errors.StackError` naming the key path.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import attrs

from mirakuru.core.stack.errors import (
    DependencyCycle,
    InvalidValue,
    ReadyWithoutProbe,
    StackError,
    UnknownDependency,
    UnknownKey,
    UnknownPlaceholder,
    WrongType,
)
from mirakuru.core.stack.model import Condition, ReadySpec, Restart, ServiceSpec, StackSpec
from mirakuru.core.stack.placeholders import OWN_PORT, build_probe, fill, placeholders, port_of

__all__ = ["SERVICE_KEYS", "parse_stack"]

SERVICE_KEYS = frozenset(
    {
        "command",
        "ready",
        "depends_on",
        "env",
        "cwd",
        "timeout",
        "stop_timeout",
        "restart",
        "max_restarts",
    }
)
READY_TEXT_KEYS = ("tcp", "http", "method", "output", "pid_file", "unix_socket")
READY_KEYS = frozenset({*READY_TEXT_KEYS, "status", "notify"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_T = TypeVar("_T")


def _kind(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


def _hint(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for a likely typo, else the known names."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(names)})"


class _Reader:
    """Reads one file's declaration, raising the first error with its key path."""

    def __init__(self, source: str, prefix: str) -> None:
        self.source = source
        self.prefix = prefix

    def path(self, *keys: str) -> str:
        return ".".join(key for key in (self.prefix, *keys) if key)

    def fail(self, kind: type[StackError], key: str, reason: str) -> NoReturn:
        raise kind(self.source, key, reason)

    def table(self, value: object, key: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(WrongType, key, f"expected a table, got {_kind(value)}")
        for name in value:
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                self.fail(UnknownKey, where, "unknown key" + _hint(name, allowed))
        return value

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            self.fail(WrongType, key, f"expected a string, got {_kind(value)}")
        if not value:
            self.fail(InvalidValue, key, "must not be empty")
        return value

    def argument(self, value: object, key: str, index: int) -> str:
        # An empty argument is a real one (``--save ''``); only the program needs a name.
        if not isinstance(value, str):
            self.fail(WrongType, key, f"expected a string, got {_kind(value)}")
        if index == 0 and not value:
            self.fail(InvalidValue, key, "must name a program")
        return value

    def seconds(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(WrongType, key, f"expected a number of seconds, got {_kind(value)}")
        if math.isnan(value) or math.isinf(value) or value < 0:
            self.fail(InvalidValue, key, f"expected a finite number >= 0, got {value!r}")
        return float(value)

    def choice(self, value: object, key: str, kind: Callable[[str], _T], words: str) -> _T:
        text = self.text(value, key)
        try:
            return kind(text)
        except ValueError:
            self.fail(InvalidValue, key, f"expected {words}, got {text!r}")

    # -- one service --------------------------------------------------------------------

    def command(self, value: object, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                parts = tuple(shlex.split(value))
            except ValueError as error:
                self.fail(InvalidValue, key, f"cannot split the command: {error}")
        elif isinstance(value, Sequence):
            parts = tuple(self.argument(part, f"{key}[{i}]", i) for i, part in enumerate(value))
        else:
            self.fail(WrongType, key, f"expected a string or a list of strings, got {_kind(value)}")
        if not parts:
            self.fail(InvalidValue, key, "must name a program")
        return parts

    def ready(self, value: object, key: str) -> ReadySpec:
        table = self.table(value, key, READY_KEYS)
        fields: dict[str, Any] = {}
        for name in READY_TEXT_KEYS:
            if name in table:
                fields[name] = self.text(table[name], f"{key}.{name}")
        if "status" in table:
            status = table["status"]
            if isinstance(status, bool) or not isinstance(status, int | str):
                self.fail(
                    WrongType, f"{key}.status", f"expected a number or a regex, got {_kind(status)}"
                )
            fields["status"] = status
        if "notify" in table:
            if not isinstance(table["notify"], bool):
                self.fail(
                    WrongType,
                    f"{key}.notify",
                    f"expected true or false, got {_kind(table['notify'])}",
                )
            fields["notify"] = table["notify"]
        spec = ReadySpec(**fields)
        if spec == ReadySpec():
            self.fail(
                InvalidValue,
                key,
                "has no check: give tcp, http, output, pid_file, unix_socket or notify",
            )
        return spec

    def depends_on(self, value: object, key: str) -> tuple[tuple[str, Condition], ...]:
        pairs: list[tuple[str, Condition]] = []
        if isinstance(value, Mapping):
            for name, condition in value.items():
                words = "'started', 'ready' or 'completed'"
                pairs.append((name, self.choice(condition, f"{key}.{name}", Condition, words)))
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for index, item in enumerate(value):
                name = self.text(item, f"{key}[{index}]")
                if any(name == seen for seen, _ in pairs):
                    self.fail(InvalidValue, f"{key}[{index}]", f"{name!r} is listed twice")
                pairs.append((name, Condition.READY))
        else:
            self.fail(WrongType, key, f"expected a list of names or a table, got {_kind(value)}")
        return tuple(pairs)

    def env(self, value: object, key: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, Mapping):
            self.fail(WrongType, key, f"expected a table, got {_kind(value)}")
        pairs = []
        for name, item in value.items():
            if not name or "=" in name or "\0" in name:
                self.fail(InvalidValue, f"{key}.{name}", "is not a valid variable name")
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.fail(WrongType, f"{key}.{name}", f"expected a string, got {_kind(item)}")
            if isinstance(item, str) and "\0" in item:
                self.fail(InvalidValue, f"{key}.{name}", "must not contain a NUL character")
            pairs.append((name, str(item)))
        return tuple(pairs)

    def service(self, name: str, value: object) -> ServiceSpec:
        key = self.path("services", name)
        if not _NAME.match(name):
            self.fail(InvalidValue, key, "a service name uses letters, digits, '-' and '_' only")
        table = self.table(value, key, SERVICE_KEYS)
        if "command" not in table:
            self.fail(InvalidValue, key, "has no command")
        fields: dict[str, Any] = {"command": self.command(table["command"], f"{key}.command")}
        if "ready" in table:
            fields["ready"] = self.ready(table["ready"], f"{key}.ready")
        if "depends_on" in table:
            fields["depends_on"] = self.depends_on(table["depends_on"], f"{key}.depends_on")
        if "env" in table:
            fields["env"] = self.env(table["env"], f"{key}.env")
        if "cwd" in table:
            fields["cwd"] = self.text(table["cwd"], f"{key}.cwd")
        for seconds in ("timeout", "stop_timeout"):
            if seconds in table:
                fields[seconds] = self.seconds(table[seconds], f"{key}.{seconds}")
        if "restart" in table:
            words = "'no' or 'on-failure'"
            fields["restart"] = self.choice(table["restart"], f"{key}.restart", Restart, words)
        if "max_restarts" in table:
            count = table["max_restarts"]
            if isinstance(count, bool) or not isinstance(count, int):
                self.fail(
                    WrongType, f"{key}.max_restarts", f"expected an integer, got {_kind(count)}"
                )
            if count < 0:
                self.fail(InvalidValue, f"{key}.max_restarts", f"must be >= 0, got {count}")
            fields["max_restarts"] = count
        return ServiceSpec(name=name, **fields)

    # -- across services ----------------------------------------------------------------

    def references(self, services: Mapping[str, ServiceSpec]) -> None:
        with_port = {
            name
            for name, service in services.items()
            for _, text in service.texts()
            if OWN_PORT in placeholders(text)
        }
        for name, service in services.items():
            key = self.path("services", name)
            for dependency, condition in service.depends_on:
                where = f"{key}.depends_on.{dependency}"
                if dependency not in services:
                    reason = f"no service {dependency!r}" + _hint(dependency, services)
                    self.fail(UnknownDependency, where, reason)
                if condition is Condition.READY and services[dependency].ready is None:
                    self.fail(
                        ReadyWithoutProbe,
                        where,
                        f"{dependency!r} has no ready check, so it would never be ready:"
                        " add one to it, or wait for 'started' or 'completed'",
                    )
            for field, text in service.texts():
                for placeholder in placeholders(text):
                    self.placeholder(placeholder, f"{key}.{field}", services, with_port)

    def placeholder(
        self, placeholder: str, key: str, services: Mapping[str, ServiceSpec], with_port: set[str]
    ) -> None:
        other = port_of(placeholder)
        if other is None:
            self.fail(
                UnknownPlaceholder,
                key,
                f"unknown placeholder {{{placeholder}}}: use {{port}} or {{NAME.port}}"
                " ({{...}} for literal braces)",
            )
        if other and other not in services:
            self.fail(UnknownPlaceholder, key, f"{{{placeholder}}}: no service {other!r}")
        if other and other not in with_port:
            self.fail(
                UnknownPlaceholder,
                key,
                f"{{{placeholder}}}: {other!r} does not use {{port}}, so it has no port",
            )

    def probes(self, services: Mapping[str, ServiceSpec]) -> None:
        dummy = dict.fromkeys(services, 1)
        for name, service in services.items():
            ready = service.ready
            if ready is None:
                continue
            for field, value in ready.to_dict().items():
                if field in ("status", "method"):
                    if ready.http is not None:
                        continue  # checked with the http entry
                    one = attrs.evolve(ReadySpec(), **{field: value})
                elif field == "http":
                    one = ReadySpec(http=ready.http, status=ready.status, method=ready.method)
                else:
                    one = ReadySpec(**{field: value})

                def text(value: str, own: str = name) -> str:
                    return fill(value, own, dummy)

                try:
                    build_probe(one, "/", text)
                except (TypeError, ValueError) as error:
                    self.fail(InvalidValue, self.path("services", name, "ready", field), str(error))

    def cycles(self, services: Mapping[str, ServiceSpec]) -> None:
        done: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in path:
                cycle = (*path[path.index(name) :], name)
                key = self.path("services", cycle[0], "depends_on", cycle[1])
                raise DependencyCycle(self.source, key, cycle)
            for dependency in services[name].dependencies:
                visit(dependency, (*path, name))
            done.add(name)

        for name in services:
            visit(name, ())


def parse_stack(data: Mapping[str, Any], source: str, *, prefix: str = "") -> StackSpec:
    """Parse and validate a declaration; ``prefix`` is where it sits in the file's keys.

    ``source`` is the file's path (its directory resolves relative ``cwd``); pass
    ``prefix="tool.mirakuru"`` for the table in ``pyproject.toml``. Raises a
    :class:`~mirakuru.core.stack.errors.StackError` subclass for the first mistake.
    """
    reader = _Reader(source, prefix)
    top = reader.table(data, reader.path(), frozenset({"services"}))
    if "services" not in top:
        reader.fail(InvalidValue, reader.path("services"), "declares no service")
    tables = top["services"]
    if not isinstance(tables, Mapping):
        reader.fail(WrongType, reader.path("services"), f"expected a table, got {_kind(tables)}")
    if not tables:
        reader.fail(InvalidValue, reader.path("services"), "declares no service")
    services = {name: reader.service(name, value) for name, value in tables.items()}
    reader.references(services)
    reader.probes(services)
    reader.cycles(services)
    root = source.rpartition("/")[0] or "/"
    return StackSpec(source=source, root=root, services=tuple(services.values()))
