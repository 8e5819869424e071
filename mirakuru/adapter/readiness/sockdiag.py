"""Has the application accepted our connection? Asked of the kernel through sock_diag.

A TCP connection is completed by the kernel and then waits in the listener's accept queue
until the program calls ``accept()``: a connect that succeeds proves only that a socket
listens, not that the program serving it is running (it may be about to exit). The server's
end of our connection has no file (inode 0) until it is accepted, and an unprivileged
process can look that end up by its address pair with netlink ``SOCK_DIAG_BY_FAMILY``.
A unix stream listener queues connections the same way: ``UNIX_DIAG`` reports our socket's
peer inode, 0 while that peer waits unaccepted in the queue (or after it closed).

The same lookup tells whether anything listens on a local port at all (:func:`listening`):
a question on one long-lived netlink socket costs a quarter of the refused connect it
replaces while a TCP probe polls.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import socket
import struct
import threading

from mirakuru.adapter.capabilities import capabilities

__all__ = [
    "PeerState",
    "available",
    "listener_question",
    "listening",
    "listening_now",
    "peer_state",
    "sees",
]

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_ESTABLISHED = 1
_TCP_LISTEN = 10
_ENOENT = 2
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


class _Channel:
    """One netlink socket for the whole process, one question at a time.

    Opening a netlink socket per question costs as much as a refused connect, which would
    undo what :func:`listening` saves. The lock keeps answers from crossing between
    threads; sequence numbers skip an answer left over from a question that timed out.
    """

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self.forget()

    def forget(self) -> None:
        """Start afresh: a new lock, a socket opened on the next question."""
        self._lock = threading.Lock()
        self._socket = None

    def exchange(self, message: bytes, size: int = 8192) -> bytes | None:
        """Send ``message`` (header included) and return the answer with its number."""
        with self._lock:
            try:
                diag = self._socket
                if diag is None:
                    diag = self._socket = _open_channel()
                diag.send(message)
                for _ in range(8):
                    reply = diag.recv(size)
                    if reply[8:12] == message[8:12]:
                        return reply
            except OSError:
                self.close_unlocked()
            return None

    def listening(self, question: bytes) -> bool | None:
        """The answer to a prepared :func:`listener_question` (see :func:`listening`)."""
        # Asked every few ms while a port is polled: one call, raw bytes, no unpacking.
        with self._lock:
            diag = self._socket
            try:
                if diag is None:
                    diag = self._socket = _open_channel()
                diag.send(question)
                reply = diag.recv(1024)
            except OSError:
                self.close_unlocked()
                return None
        if reply[8:12] != question[8:12]:
            return None  # an answer left over from a question that failed: ask again later
        kind = reply[4:6]
        if kind == _FOUND:
            return True  # whatever its state, a real connect decides
        if kind == _ERROR and reply[16:20] == _NOT_FOUND:
            return False
        return None

    def close_unlocked(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _open_channel() -> socket.socket:
    diag = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    # The kernel queues its answer before send() returns, so a read never needs to wait
    # (nor a poll() before each call, as a timeout would add); an answer missing for any
    # reason raises BlockingIOError, which counts as "unknown".
    diag.setblocking(False)
    return diag


_channel = _Channel()
_sequences = itertools.count(1)


def _forget_parents_channel() -> None:
    # A forked child shares the parent's netlink socket, so answers could go to either
    # process; its lock may also have been held by a thread that does not exist here.
    # In place: listening_now is bound to this very object.
    _channel.close_unlocked()
    _channel.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_channel)


def _close_at_exit() -> None:
    # Left to the collector at exit, the socket would be reported as leaked (-X dev).
    if _channel._lock.acquire(timeout=1.0):
        try:
            _channel.close_unlocked()
        finally:
            _channel._lock.release()


atexit.register(_close_at_exit)


def _message(request: bytes) -> bytes:
    sequence = next(_sequences) % 0xFFFFFFFF + 1
    header = _HEADER.pack(
        _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, sequence, 0
    )
    return header + request


def _ask(request: bytes) -> bytes | None:
    return _channel.exchange(_message(request))


@functools.lru_cache(maxsize=256)
def _listener_question(family: int, address: str, port: int) -> bytes:
    # The lookup a SYN to (address, port) makes: local end (address, port), remote end
    # unspecified, which matches a listener bound to that address or to the wildcard.
    # Built once per address, with a sequence number of its own.
    return _message(
        _REQUEST.pack(
            family,
            socket.IPPROTO_TCP,
            0,
            1 << _TCP_LISTEN,
            port.to_bytes(2, "big"),
            b"\0\0",
            _packed(family, address),
            bytes(16),
            0,
            _NO_COOKIE,
            _NO_COOKIE,
        )
    )


#: An answer's type field (bytes 4-5) when a socket was found, or on an error; and the
#: error code after the header (bytes 16-19) when none was: -ENOENT.
_FOUND = struct.pack("=H", _SOCK_DIAG_BY_FAMILY)
_ERROR = struct.pack("=H", _NLMSG_ERROR)
_NOT_FOUND = struct.pack("=i", -_ENOENT)


def listening(family: int, address: str, port: int) -> bool | None:
    """Whether a TCP socket of this network namespace listens where a connect to the local
    ``address`` and ``port`` would arrive; None when the kernel cannot say.

    False means a connect would be refused, unless something outside the socket table
    (a NAT rule, say) forwards it: callers still connect now and then.
    """
    question = listener_question(family, address, port)
    return None if question is None else _channel.listening(question)


def listener_question(family: int, address: str, port: int) -> bytes | None:
    """:func:`listening`'s question, prepared once for :func:`listening_now` to ask it
    repeatedly; None when the kernel cannot be asked."""
    if not _sees_listeners():
        return None
    try:
        return _listener_question(family, address, port)
    except (OSError, OverflowError, ValueError):
        return None


#: The kernel's answer to a prepared :func:`listener_question`, as :func:`listening`
#: (the channel's method itself: one call less on every poll).
listening_now = _channel.listening


@functools.cache
def _sees_listeners() -> bool:
    # Without the inet_diag module every lookup fails with ENOENT, exactly like "nobody
    # listens": ask once about a listener of ours, and about the same port once closed.
    if not available():
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.listen(1)
            port = probe.getsockname()[1]
            question = _listener_question(socket.AF_INET, "127.0.0.1", port)
            if _channel.listening(question) is not True:
                return False
    except OSError:
        return False
    return _channel.listening(question) is False


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
