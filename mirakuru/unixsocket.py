"""Wait for a unix socket to accept connections: the drop-in ``UnixSocketExecutor``."""

from __future__ import annotations

import os
from typing import Any

from mirakuru.base import Executor
from mirakuru.core.probes import unix_socket

__all__ = ["UnixSocketExecutor"]


class UnixSocketExecutor(Executor):
    """Ready once the unix stream socket at ``socket_name`` accepts a connection."""

    def __init__(
        self,
        command: str | list[str] | tuple[str, ...],
        socket_name: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:
        """Describe the process and the socket; other arguments as for :class:`Executor`."""
        probe = unix_socket(socket_name)
        self.socket = probe.path
        kwargs.setdefault("ready", probe)
        super().__init__(command, **kwargs)
