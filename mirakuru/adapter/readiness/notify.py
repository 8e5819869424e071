"""The systemd readiness protocol: a datagram socket the child reports to.

The child finds the socket's address in ``$NOTIFY_SOCKET`` and sends newline-separated
``KEY=VALUE`` assignments; ``READY=1`` means it is ready and ``STATUS=...`` is a
human-readable note. Readiness is event-driven: the waiter polls this socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable

from mirakuru.adapter.capabilities import capabilities

__all__ = ["NotifySocket"]

_MAX_DATAGRAM = 4096


class NotifySocket:
    """A unix datagram socket collecting sd_notify messages: in the abstract namespace
    where there is one, else a socket file in a private directory removed on close."""

    def __init__(
        self, on_status: Callable[[str], None] | None = None, *, abstract: bool | None = None
    ) -> None:
        if abstract is None:
            abstract = capabilities().abstract_socket
        self._directory: str | None = None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if abstract:
                self.name = f"@mirakuru-notify-{uuid.uuid4().hex}"
                self._socket.bind("\0" + self.name[1:])
            else:
                # No abstract namespace: a socket file in a private directory (mode 0700).
                self._directory = tempfile.mkdtemp(prefix="mirakuru-notify-")
                self.name = os.path.join(self._directory, "notify")
                self._socket.bind(self.name)
        except BaseException:
            self.close()
            raise
        self._socket.setblocking(False)
        self.ready = False
        self.statuses: list[str] = []
        self._on_status = on_status

    @property
    def address(self) -> str:
        """The value for ``NOTIFY_SOCKET`` (``@`` marks the abstract namespace)."""
        return self.name

    def fileno(self) -> int:
        return self._socket.fileno()

    def on_readable(self) -> bool:
        """Read every pending datagram; the socket stays open until closed."""
        while True:
            try:
                data = self._socket.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            self._parse(data.decode("utf-8", "replace"))

    def _parse(self, message: str) -> None:
        for line in message.splitlines():
            key, _, value = line.partition("=")
            if key == "READY" and value == "1":
                self.ready = True
            elif key == "STATUS":
                self.statuses.append(value)
                if self._on_status is not None:
                    self._on_status(value)

    def close(self) -> None:
        """Stop listening; later messages from the child are refused, harmlessly."""
        with contextlib.suppress(OSError):
            self._socket.close()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
