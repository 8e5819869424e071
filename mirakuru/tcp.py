"""Wait for a TCP port to accept connections: the drop-in ``TCPExecutor``."""

from __future__ import annotations

from typing import Any

from mirakuru.base import Executor
from mirakuru.core.probes import tcp

__all__ = ["TCPExecutor"]


class TCPExecutor(Executor):
    """Ready once ``host``:``port`` accepts a TCP connection (IPv4 or IPv6).

    If the port already accepts connections before the process starts, ``start()`` raises
    :class:`AlreadyRunning`.
    """

    def __init__(
        self, command: str | list[str] | tuple[str, ...], host: str, port: int, **kwargs: Any
    ) -> None:
        """Describe the process and its address; other arguments as for :class:`Executor`."""
        self.host = host
        self.port = port
        kwargs.setdefault("ready", tcp(host, port))
        super().__init__(command, **kwargs)
