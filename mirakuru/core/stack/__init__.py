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
    UP,
    Condition,
    ReadySpec,
    Restart,
    ServiceSpec,
    StackSpec,
    Status,
    holds,
    restart_delay,
)
from mirakuru.core.stack.parse import parse_stack
from mirakuru.core.stack.placeholders import (
    build_probe,
    fill,
    placeholders,
    port_of,
    ready_table,
)

__all__ = [
    "UP",
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
    "Status",
    "UnknownDependency",
    "UnknownKey",
    "UnknownPlaceholder",
    "UnknownService",
    "WrongType",
    "build_probe",
    "fill",
    "holds",
    "parse_stack",
    "placeholders",
    "port_of",
    "ready_table",
    "restart_delay",
]
