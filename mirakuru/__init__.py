"""mirakuru: start the processes your tests need, wait until they are ready, stop them.

The drop-in API of mirakuru 1.x-3.x, plus an inspectable lifecycle.
"""

from __future__ import annotations

import logging

from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core.lifecycle import IllegalTransition, State, StateChange, Trigger
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutableNotFound,
    ExecutorError,
    InvalidCommand,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    TimeoutExpired,
)

__version__ = "4.0.0.dev1"

__all__ = [
    "AlreadyRunning",
    "ExecutableNotFound",
    "Executor",
    "ExecutorError",
    "IllegalTransition",
    "InvalidCommand",
    "ProcessExitedWithError",
    "ProcessFinishedWithError",
    "SimpleExecutor",
    "State",
    "StateChange",
    "TimeoutExpired",
    "Trigger",
]

logging.getLogger("mirakuru").addHandler(logging.NullHandler())
