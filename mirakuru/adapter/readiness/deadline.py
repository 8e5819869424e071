"""One deadline for every read of an HTTP attempt, plain or TLS.

A per-read timeout restarts with every byte, so a server that trickles its answer could
stretch one attempt past the start's deadline; these sockets give each read only what is
left of the attempt's one deadline.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from mirakuru.adapter.clock import monotonic

if TYPE_CHECKING:
    import ssl

__all__ = ["DeadlineSocket", "deadline_tls", "left"]


def left(deadline: float) -> float:
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError("the HTTP answer did not arrive within the attempt's time")
    return left


class DeadlineSocket(socket.socket):
    """A socket whose reads share one deadline: a server sending a byte at a time cannot
    stretch an attempt past it (a per-read timeout restarts with every byte)."""

    deadline = 0.0

    @classmethod
    def adopt(cls, sock: socket.socket, deadline: float) -> DeadlineSocket:
        timed = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        timed.deadline = deadline
        return timed

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(left(self.deadline))
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineReads:
    """Mixed into a TLS socket's class: what :class:`DeadlineSocket` is for plain sockets
    (the TLS layer reads the socket itself, with a timeout that restarts every read)."""

    deadline = 0.0

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self.settimeout(left(self.deadline))  # type: ignore[attr-defined]
        return super().recv_into(buffer, nbytes, flags)  # type: ignore[misc,no-any-return]

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self.settimeout(left(self.deadline))  # type: ignore[attr-defined]
        return super().recv(buflen, flags)  # type: ignore[misc,no-any-return]


_deadline_kinds: dict[type, type] = {}


def _with_deadline_reads(kind: type) -> type:
    made = _deadline_kinds.get(kind)
    if made is None:
        made = _deadline_kinds[kind] = type(f"Deadline{kind.__name__}", (_DeadlineReads, kind), {})
    return made


def deadline_tls(tls: ssl.SSLSocket, deadline: float) -> ssl.SSLSocket:
    """``tls`` with every later read bounded by ``deadline`` (its class changes, not the
    connection: the handshake is done, and the context, maybe the user's, is left alone)."""
    try:
        tls.__class__ = _with_deadline_reads(type(tls))
    except TypeError:  # a context's own socket class with an odd layout: per-read limits
        return tls
    tls.deadline = deadline  # type: ignore[attr-defined]
    return tls
