"""Why a stack file was refused: one typed error per kind of mistake.

Every error names the file and the key path inside it (``services.api.depends_on.cach``), so
a message points at the line to fix. They pickle, so they cross pytest-xdist boundaries.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DependencyCycle",
    "InvalidValue",
    "ReadyWithoutProbe",
    "StackError",
    "StackFileNotFound",
    "UnknownDependency",
    "UnknownKey",
    "UnknownPlaceholder",
    "UnknownService",
    "WrongType",
]


class StackError(ValueError):
    """A stack declaration that cannot be used; raised before anything is spawned."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(source, key, reason)
        #: The file the declaration came from.
        self.source = source
        #: Where in the file: dotted key path such as ``services.api.ready.http``.
        self.key = key
        #: What is wrong, in words.
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.source}: {self.key}" if self.key else self.source
        return f"{where}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(kind: type[StackError], state: dict[str, Any]) -> StackError:
    error = kind.__new__(kind)
    ValueError.__init__(error, state["source"], state["key"], state["reason"])
    error.__dict__.update(state)
    return error


class StackFileNotFound(StackError):
    """No stack file where one was named, or none in the directory or its parents."""


class UnknownKey(StackError):
    """A key the file format does not have (usually a typo)."""


class WrongType(StackError):
    """A value of the wrong type, e.g. a number where a string is expected."""


class InvalidValue(StackError):
    """A value of the right type that cannot work: a bad regex, URL, name or condition."""


class UnknownDependency(StackError):
    """``depends_on`` names a service the file does not declare."""


class DependencyCycle(StackError):
    """Services that (through their dependencies) wait for themselves."""

    def __init__(self, source: str, key: str, cycle: tuple[str, ...]) -> None:
        super().__init__(source, key, "dependency cycle: " + " -> ".join(cycle))
        #: The services of the cycle, the first repeated at the end.
        self.cycle = cycle


class ReadyWithoutProbe(StackError):
    """A ``ready`` condition on a service that has no ``ready`` probe (it would never hold)."""


class UnknownPlaceholder(StackError):
    """A ``{...}`` placeholder that is neither ``{port}`` nor ``{NAME.port}`` of a service."""


class UnknownService(StackError):
    """A service asked for by name (``mirakuru up NAME``) that the file does not declare."""
