"""Has the application accepted our connection? Asked of the kernel through sock_diag.

A TCP connection is completed by the kernel and then waits in the listener's accept queue
until the program calls ``accept()``: a connect that succeeds proves only that a socket
listens, not that the program serving it is running (it may be about to exit). The server's
end of our connection has no file (inode 0) until it is accepted, and an unprivileged
process can look that end up by its address pair with netlink ``SOCK_DIAG_BY_FAMILY``.
"""

from __future__ import annotations

import functools
import socket
import struct

from mirakuru.adapter.capabilities import capabilities

__all__ = ["PeerState", "available", "peer_state"]

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_ESTABLISHED = 1
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid.
_REQUEST = struct.Struct("=BBBxI2s2s16s16sIII")
# inet_diag_msg: family, state, timer, retrans, sockid (48 bytes), expires, rqueue, wqueue,
# uid, inode.
_MESSAGE = struct.Struct("=BBBB48xIIIII")

#: The server's end of our connection: "accepted", "queued" (still in the accept queue),
#: or None when it cannot be seen (another network namespace, no sock_diag).
PeerState = str | None


def _packed(family: int, address: str) -> bytes:
    return socket.inet_pton(family, address).ljust(16, b"\0")


@functools.cache
def available() -> bool:
    """Whether sock_diag lookups work here (Linux, not forced portable)."""
    if not capabilities().proc_fs or not hasattr(socket, "AF_NETLINK"):
        return False
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG):
            return True
    except OSError:
        return False


def peer_state(sock: socket.socket) -> PeerState:
    """Whether the listener's program has accepted the connected TCP socket ``sock``."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        local = sock.getsockname()
        remote = sock.getpeername()
    except OSError:
        return None
    family = sock.family
    # The server's end: its source is our peer, its destination is us.
    request = _REQUEST.pack(
        family,
        socket.IPPROTO_TCP,
        0,
        0xFFFFFFFF,
        remote[1].to_bytes(2, "big"),
        local[1].to_bytes(2, "big"),
        _packed(family, remote[0]),
        _packed(family, local[0]),
        0,
        _NO_COOKIE,
        _NO_COOKIE,
    )
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(header + request)
            reply = diag.recv(8192)
    except OSError:
        return None
    return _parse(reply)


def _parse(reply: bytes) -> PeerState:
    if len(reply) < _HEADER.size:
        return None
    _, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _HEADER.size + _MESSAGE.size:
        return None  # NLMSG_ERROR: not found (another namespace, or already gone)
    _, state, _, _, _, _, _, _, inode = _MESSAGE.unpack_from(reply, _HEADER.size)
    # An end that left ESTABLISHED was accepted and closed (or is closing): it ran.
    if inode != 0 or state != _TCP_ESTABLISHED:
        return "accepted"
    return "queued"
