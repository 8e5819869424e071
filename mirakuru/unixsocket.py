"""Wait for a unix socket to accept connections: the drop-in ``UnixSocketExecutor``."""

from __future__ import annotations

import os
from typing import Any

from mirakuru.base import Executor
from mirakuru.core.command import CommandLike
from mirakuru.core.probes import Probe, unix_socket

__all__ = ["UnixSocketExecutor"]


class UnixSocketExecutor(Executor):
    """Ready once the unix stream socket at ``socket`` accepts a connection.

    The path is given as ``socket_name`` and kept, as published, in ``self.socket``,
    which is read each time a check runs.
    """

    def __init__(
        self,
        command: CommandLike,
        socket_name: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:
        """Describe the process and the socket; other arguments as for :class:`Executor`."""
        self.socket = socket_name
        super().__init__(command, **kwargs)

    def _derived_probe(self) -> Probe | None:
        try:
            return unix_socket(self.socket)
        except (TypeError, ValueError) as error:
            message = str(error).replace("socket_name", "socket", 1)
            raise type(error)(f"{type(self).__name__}.{message}") from None
