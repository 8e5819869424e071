"""Wait for a file to appear: the drop-in ``PidExecutor``."""

from __future__ import annotations

import os
from typing import Any

from mirakuru.base import Executor
from mirakuru.core.probes import pid_file

__all__ = ["PidExecutor"]


class PidExecutor(Executor):
    """Ready once ``filename`` exists (daemons write their pid file once they are up).

    If the file exists before the process starts, ``start()`` raises
    :class:`AlreadyRunning`: a stale pid file is worth noticing.
    """

    def __init__(
        self,
        command: str | list[str] | tuple[str, ...],
        filename: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:
        """Describe the process and the file; other arguments as for :class:`Executor`."""
        if not filename:
            raise ValueError(f"PidExecutor needs a filename to wait for, got {filename!r}")
        probe = pid_file(filename)
        self.filename = probe.path
        kwargs.setdefault("ready", probe)
        super().__init__(command, **kwargs)
