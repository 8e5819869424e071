"""Has the application accepted our connection? Asked of the kernel through sock_diag.

A TCP connection is completed by the kernel and then waits in the listener's accept queue
until the program calls ``accept()``: a connect that succeeds proves only that a socket
listens, not that the program serving it is running (it may be about to exit). The server's
end of our connection has no file (inode 0) until it is accepted, and an unprivileged
process can look that end up by its address pair with netlink ``SOCK_DIAG_BY_FAMILY``.
A unix stream listener queues connections the same way: ``UNIX_DIAG`` reports our socket's
peer inode, 0 while that peer waits unaccepted in the queue (or after it closed).
"""

from __future__ import annotations

import functools
import os
import socket
import struct

from mirakuru.adapter.capabilities import capabilities

__all__ = ["PeerState", "available", "peer_state", "sees"]

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
# unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
_UNIX_REQUEST = struct.Struct("=BBHIIIII")
# unix_diag_msg: family, type, state, pad, ino, cookie[2]; then netlink attributes.
_UNIX_MESSAGE = struct.Struct("=BBBxIII")
_ATTRIBUTE = struct.Struct("=HH")
_UDIAG_SHOW_PEER = 0x04
_UNIX_DIAG_PEER = 2

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


@functools.cache
def _unix_diag() -> bool:
    # UNIX_DIAG is its own kernel option (often a module): ask once about a pair of ours.
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        return _unix_peer_inode(left) is not None


def sees(family: int) -> bool:
    """Whether :func:`peer_state` can tell queued from accepted for sockets of ``family``."""
    if not available():
        return False
    if family == socket.AF_UNIX:
        return _unix_diag()
    return family in (socket.AF_INET, socket.AF_INET6)


def peer_state(sock: socket.socket) -> PeerState:
    """Whether the listener's program has accepted the connected TCP or unix socket ``sock``."""
    if sock.family == socket.AF_UNIX:
        inode = _unix_peer_inode(sock)
        if inode is None:
            return None
        # 0: the peer has no file yet (queued), or has closed; a peek on ours tells which.
        return "queued" if inode == 0 else "accepted"
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
    reply = _ask(request)
    return None if reply is None else _parse(reply)


def _ask(request: bytes) -> bytes | None:
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(header + request)
            return diag.recv(8192)
    except OSError:
        return None


def _unix_peer_inode(sock: socket.socket) -> int | None:
    """The inode of the unix socket ``sock``'s peer (0: it has no file), None if unknown."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    request = _UNIX_REQUEST.pack(
        socket.AF_UNIX, 0, 0, 0xFFFFFFFF, inode, _UDIAG_SHOW_PEER, _NO_COOKIE, _NO_COOKIE
    )
    reply = _ask(request)
    if reply is None or len(reply) < _HEADER.size + _UNIX_MESSAGE.size:
        return None
    length, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind != _SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR: no UNIX_DIAG in this kernel
    offset = _HEADER.size + _UNIX_MESSAGE.size
    end = min(length, len(reply))
    while offset + _ATTRIBUTE.size <= end:
        size, kind = _ATTRIBUTE.unpack_from(reply, offset)
        if size < _ATTRIBUTE.size:
            return None
        if kind == _UNIX_DIAG_PEER and size >= _ATTRIBUTE.size + 4:
            peer: int = struct.unpack_from("=I", reply, offset + _ATTRIBUTE.size)[0]
            return peer
        offset += (size + 3) & ~3
    return None  # not connected


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
