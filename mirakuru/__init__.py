"""mirakuru: start the processes your tests need, wait until they are ready, stop them.

The drop-in API of mirakuru 1.x-3.x, plus an inspectable lifecycle. Names are imported on
first use (PEP 562), so ``import mirakuru`` -- which the pytest plugin does in every test
run -- costs next to nothing until an executor is actually needed.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirakuru import ports, probes
    from mirakuru.base import Executor, SimpleExecutor
    from mirakuru.core.lifecycle import IllegalTransition, State, StateChange, Trigger
    from mirakuru.core.report import StopReport
    from mirakuru.core.stack import StackError
    from mirakuru.exceptions import (
        AlreadyRunning,
        ExecutableNotFound,
        ExecutorError,
        InvalidCommand,
        LeftNothingRunning,
        OutputEnded,
        ProcessExitedWithError,
        ProcessFinishedWithError,
        TimeoutExpired,
    )
    from mirakuru.group import ExecutorGroup, astart_all, start_all
    from mirakuru.http import HTTPExecutor
    from mirakuru.output import OutputExecutor
    from mirakuru.pid import PidExecutor
    from mirakuru.stack import Stack, StackFailed
    from mirakuru.tcp import TCPExecutor
    from mirakuru.unixsocket import UnixSocketExecutor

__version__ = "4.0.0.dev1"

#: Public name -> the module that defines it.
_HOMES = {
    "AlreadyRunning": "mirakuru.exceptions",
    "ExecutableNotFound": "mirakuru.exceptions",
    "Executor": "mirakuru.base",
    "ExecutorError": "mirakuru.exceptions",
    "ExecutorGroup": "mirakuru.group",
    "HTTPExecutor": "mirakuru.http",
    "IllegalTransition": "mirakuru.core.lifecycle",
    "InvalidCommand": "mirakuru.exceptions",
    "LeftNothingRunning": "mirakuru.exceptions",
    "OutputEnded": "mirakuru.exceptions",
    "OutputExecutor": "mirakuru.output",
    "PidExecutor": "mirakuru.pid",
    "ProcessExitedWithError": "mirakuru.exceptions",
    "ProcessFinishedWithError": "mirakuru.exceptions",
    "SimpleExecutor": "mirakuru.base",
    "Stack": "mirakuru.stack",
    "StackError": "mirakuru.core.stack",
    "StackFailed": "mirakuru.stack",
    "State": "mirakuru.core.lifecycle",
    "StateChange": "mirakuru.core.lifecycle",
    "StopReport": "mirakuru.core.report",
    "TCPExecutor": "mirakuru.tcp",
    "TimeoutExpired": "mirakuru.exceptions",
    "Trigger": "mirakuru.core.lifecycle",
    "UnixSocketExecutor": "mirakuru.unixsocket",
    "astart_all": "mirakuru.group",
    "start_all": "mirakuru.group",
}

__all__ = [
    "AlreadyRunning",
    "ExecutableNotFound",
    "Executor",
    "ExecutorError",
    "ExecutorGroup",
    "HTTPExecutor",
    "IllegalTransition",
    "InvalidCommand",
    "LeftNothingRunning",
    "OutputEnded",
    "OutputExecutor",
    "PidExecutor",
    "ProcessExitedWithError",
    "ProcessFinishedWithError",
    "SimpleExecutor",
    "Stack",
    "StackError",
    "StackFailed",
    "State",
    "StateChange",
    "StopReport",
    "TCPExecutor",
    "TimeoutExpired",
    "Trigger",
    "UnixSocketExecutor",
    "astart_all",
    "ports",
    "probes",
    "start_all",
]


def __getattr__(name: str) -> Any:
    if name in ("ports", "probes"):
        return importlib.import_module(f"mirakuru.{name}")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mirakuru' has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except AttributeError as error:  # a platform lacking a name the module needs
        raise ImportError(f"cannot import mirakuru.{name} from {home}: {error}") from error
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


logging.getLogger("mirakuru").addHandler(logging.NullHandler())
