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
        self._built_address: tuple[object, Probe] | None = None
        super().__init__(command, **kwargs)

    def _derived_probe(self) -> Probe | None:
        return self._address_probe()

    def _occupied_probe(self) -> Probe | None:
        # Anything listening on the port means our server could not bind it.
        return self._address_probe()

    def _address_probe(self) -> Probe:
        """The TCP probe for the current ``host`` and ``port``, or an error naming them."""
        host, port = self.host, self.port
        # Asked on every check while polling: rebuild (and re-validate) only on a change.
        # The types are part of the key, so True is not mistaken for the port 1.
        key = (host, port, type(host), type(port))
        # getattr: a subclass may set host and port without calling our __init__.
        built: tuple[object, Probe] | None = getattr(self, "_built_address", None)
        if built is not None and built[0] == key:
            return built[1]
        try:
            probe = tcp(host, port)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{type(self).__name__}.{error}") from None
        self._built_address = (key, probe)
        return probe
