"""mirakuru: start the processes your tests need, wait until they are ready, stop them.

The drop-in API of mirakuru 1.x-3.x, plus an inspectable lifecycle.
"""

from __future__ import annotations

import logging

from mirakuru import probes
from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core.lifecycle import IllegalTransition, State, StateChange, Trigger
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutableNotFound,
    ExecutorError,
    InvalidCommand,
    OutputEnded,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    TimeoutExpired,
)
from mirakuru.http import HTTPExecutor
from mirakuru.output import OutputExecutor
from mirakuru.pid import PidExecutor
from mirakuru.tcp import TCPExecutor
from mirakuru.unixsocket import UnixSocketExecutor

__version__ = "4.0.0.dev1"

__all__ = [
    "AlreadyRunning",
    "ExecutableNotFound",
    "Executor",
    "ExecutorError",
    "HTTPExecutor",
    "IllegalTransition",
    "InvalidCommand",
    "OutputEnded",
    "OutputExecutor",
    "PidExecutor",
    "ProcessExitedWithError",
    "ProcessFinishedWithError",
    "SimpleExecutor",
    "State",
    "StateChange",
    "TCPExecutor",
    "TimeoutExpired",
    "Trigger",
    "UnixSocketExecutor",
    "probes",
]

logging.getLogger("mirakuru").addHandler(logging.NullHandler())
