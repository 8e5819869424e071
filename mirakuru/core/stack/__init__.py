"""The stack declaration: a ``mirakuru.toml`` parsed into frozen values, validated, hashed.

Pure: it is given the dict that ``tomllib`` returned and the file's path; finding and
reading the file is the adapter's job, starting the services the facade's.
"""

from mirakuru.core.stack.errors import (
    DependencyCycle,
    InvalidValue,
    ReadyWithoutProbe,
    StackError,
    StackFileNotFound,
    UnknownDependency,
    UnknownKey,
    UnknownPlaceholder,
    UnknownService,
    WrongType,
)
from mirakuru.core.stack.model import (
    Condition,
    ReadySpec,
    Restart,
    ServiceSpec,
    StackSpec,
    restart_delay,
)
from mirakuru.core.stack.parse import parse_stack
from mirakuru.core.stack.placeholders import build_probe, fill, placeholders, port_of

__all__ = [
    "Condition",
    "DependencyCycle",
    "InvalidValue",
    "ReadySpec",
    "ReadyWithoutProbe",
    "Restart",
    "ServiceSpec",
    "StackError",
    "StackFileNotFound",
    "StackSpec",
    "UnknownDependency",
    "UnknownKey",
    "UnknownPlaceholder",
    "UnknownService",
    "WrongType",
    "build_probe",
    "fill",
    "parse_stack",
    "placeholders",
    "port_of",
    "restart_delay",
]
