"""Wait for a TCP port to accept connections: the drop-in ``TCPExecutor``."""

from __future__ import annotations

from typing import Any

from mirakuru.base import Executor
from mirakuru.core.command import CommandLike
from mirakuru.core.probes import Probe, tcp

__all__ = ["TCPExecutor"]


class TCPExecutor(Executor):
    """Ready once ``host``:``port`` accepts a TCP connection (IPv4 or IPv6).

    ``host`` and ``port`` are read each time a check runs, so changing them after
    construction is obeyed. If the port already accepts connections before the process
    starts, ``start()`` raises :class:`AlreadyRunning`.
    """

    def __init__(self, command: CommandLike, host: str, port: int, **kwargs: Any) -> None:
        """Describe the process and its address; other arguments as for :class:`Executor`."""
        # Stored as given, as published: a placeholder host is fine until start() needs it.
        self.host = host
        self.port = port
        self._explicit_ready = kwargs.get("ready") is not None
        super().__init__(command, **kwargs)

    def _readiness_probe(self) -> Probe | None:
        if self._explicit_ready:
            return super()._readiness_probe()
        return self._address_probe()

    def _occupied_probe(self) -> Probe | None:
        # Anything listening on the port means our server could not bind it.
        return self._address_probe()

    def _address_probe(self) -> Probe:
        """The TCP probe for the current ``host`` and ``port``, or an error naming them."""
        try:
            return tcp(self.host, self.port)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{type(self).__name__}.{error}") from None
