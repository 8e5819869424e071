"""Wait for a file to appear: the drop-in ``PidExecutor``."""

from __future__ import annotations

import os
from typing import Any

from mirakuru.base import Executor
from mirakuru.core.command import CommandLike
from mirakuru.core.probes import Probe, pid_file

__all__ = ["PidExecutor"]


class PidExecutor(Executor):
    """Ready once ``filename`` exists (daemons write their pid file once they are up).

    ``filename`` is read each time a check runs. If the file exists before the process
    starts, ``start()`` raises :class:`AlreadyRunning`: a stale pid file is worth noticing.
    """

    def __init__(
        self,
        command: CommandLike,
        filename: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:
        """Describe the process and the file; other arguments as for :class:`Executor`."""
        if not filename:
            raise ValueError(f"PidExecutor needs a filename to wait for, got {filename!r}")
        self.filename = filename
        super().__init__(command, **kwargs)

    def _derived_probe(self) -> Probe | None:
        try:
            return pid_file(self.filename)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{type(self).__name__}.{error}") from None
