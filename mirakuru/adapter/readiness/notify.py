"""The systemd readiness protocol: a datagram socket the child reports to.

The child finds the socket's address in ``$NOTIFY_SOCKET`` and sends newline-separated
``KEY=VALUE`` assignments; ``READY=1`` means it is ready and ``STATUS=...`` is a
human-readable note. Readiness is event-driven: the waiter polls this socket.

An abstract socket has no permissions and its name is listed in ``/proc/net/unix``, so
anyone on the machine can send to it. Each datagram therefore carries its sender's
credentials (``SO_PASSCRED``: the kernel fills in PID and uid, the sender cannot forge
them) and is accepted only from the service: see :class:`ServiceSenders`. The socket file
used where there is no abstract namespace sits in a private (0700) directory, which other
users cannot reach. What one run of the socket can cost is bounded too: a datagram's
size, the STATUS messages kept, and the datagrams read per wake-up of the reactor.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import procfs
from mirakuru.adapter.spawn.process import group_of
from mirakuru.core.command import ENV_MARKER

__all__ = ["MAX_DATAGRAM", "STATUSES_KEPT", "NotifySocket", "ServiceSenders"]

LOG = logging.getLogger(__name__)

#: The largest datagram accepted (systemd's own limit); a longer one is dropped whole.
MAX_DATAGRAM = 4096
#: How many of the latest STATUS messages are kept (the rest are only counted).
STATUSES_KEPT = 100
#: Datagrams read per wake-up: a flood cannot keep the reactor from the other services.
_BATCH = 64
#: ``struct ucred``: the sender's PID, uid and gid.
_UCRED = struct.Struct("iII")
_SO_PASSCRED = getattr(socket, "SO_PASSCRED", None)
_SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", None)
#: How far up the parent chain a sender is followed looking for the service's leader.
_MAX_DEPTH = 64


class ServiceSenders:
    """Who may speak for one service on its notify socket.

    A sender is the service's if it is the leader or a descendant of it, in the leader's
    session, or in its cgroup: none of these can be joined from outside (while the leader
    is unreaped its PID, and with it its session ID, cannot be recycled). A process of our
    own uid that carries the service's ownership marker (a daemon that left the session)
    is the service's too, and so is one of our uid that is already gone when its datagram
    is read, since nothing is left to check: our own uid is no boundary against us.
    """

    def __init__(self, leader: subprocess.Popen[Any], token: str | None) -> None:
        self._leader = leader
        self._marker = f"{ENV_MARKER}={token}".encode() if token else None
        self._group = group_of(leader)
        self._uid = os.getuid()

    def __call__(self, pid: int, uid: int) -> bool:
        """Whether the process ``pid`` (of uid ``uid``, as the kernel says) is the service's."""
        if pid <= 0:
            return False
        stat = procfs.stat_fields(pid)
        if stat is None:
            return uid == self._uid  # gone already: whoever it was, it was one of us
        if self._in_tree(pid, stat) or (self._group is not None and self._group.holds(pid)):
            return True
        if uid != self._uid or self._marker is None:
            return False
        block = procfs.read(f"/proc/{pid}/environ")
        return block is not None and self._marker in block.split(b"\0")

    def _in_tree(self, pid: int, stat: list[bytes]) -> bool:
        leader = self._leader.pid
        if self._leader.returncode is not None:
            return False  # reaped: its PID (and session ID) may belong to anyone by now
        fields: list[bytes] | None = stat
        with contextlib.suppress(IndexError, ValueError):
            if int(stat[3]) == leader:  # the session our child leads
                return True
        for _ in range(_MAX_DEPTH):
            if pid == leader:
                return True
            if fields is None or pid <= 1:
                return False
            try:
                pid = int(fields[1])  # its parent
            except (IndexError, ValueError):
                return False
            fields = procfs.stat_fields(pid)
        return False


class NotifySocket:
    """A unix datagram socket collecting sd_notify messages: in the abstract namespace
    where there is one, else a socket file in a private directory removed on close."""

    def __init__(
        self,
        on_status: Callable[[str], None] | None = None,
        *,
        abstract: bool | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        if abstract is None:
            abstract = capabilities().abstract_socket
        self._directory: str | None = None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        #: Whether each datagram carries its sender's credentials (checked before use).
        self.credentials = False
        try:
            if abstract:
                self.name = f"@mirakuru-notify-{uuid.uuid4().hex}"
                if _SO_PASSCRED is not None and _SCM_CREDENTIALS is not None:
                    # Set before bind: no datagram can arrive without its credentials.
                    self._socket.setsockopt(socket.SOL_SOCKET, _SO_PASSCRED, 1)
                    self.credentials = True
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
        self._statuses: collections.deque[str] = collections.deque(maxlen=STATUSES_KEPT)
        #: Every STATUS message accepted, including those no longer kept.
        self.status_count = 0
        #: Datagrams dropped because they came from outside the service.
        self.refused = 0
        #: Datagrams dropped because they were longer than :data:`MAX_DATAGRAM`.
        self.oversized = 0
        self._on_status = on_status
        self._on_note = on_note
        uid = os.getuid()
        self._admit: Callable[[int, int], bool] = lambda pid, sender: sender == uid

    @property
    def address(self) -> str:
        """The value for ``NOTIFY_SOCKET`` (``@`` marks the abstract namespace)."""
        return self.name

    @property
    def statuses(self) -> list[str]:
        """The latest :data:`STATUSES_KEPT` STATUS messages, oldest first."""
        return list(self._statuses)

    def admit(self, senders: Callable[[int, int], bool]) -> None:
        """Accept datagrams only from senders ``senders(pid, uid)`` approves of."""
        self._admit = senders

    def fileno(self) -> int:
        return self._socket.fileno()

    def on_readable(self) -> bool:
        """Read the pending datagrams (a batch of them); the socket stays open until closed."""
        for _ in range(_BATCH):
            try:
                data, ancillary, flags, _ = self._socket.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(_UCRED.size) if self.credentials else 0
                )
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if flags & getattr(socket, "MSG_TRUNC", 0):
                self.oversized += 1
                LOG.debug("sd_notify: dropped a datagram longer than %d bytes", MAX_DATAGRAM)
                continue
            if self.credentials and not self._from_service(ancillary):
                continue
            self._parse(data.decode("utf-8", "replace"))
        return True

    def _from_service(self, ancillary: list[tuple[int, int, bytes]]) -> bool:
        sender = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SCM_CREDENTIALS:
                with contextlib.suppress(struct.error):
                    sender = _UCRED.unpack_from(payload)
        try:
            accepted = sender is not None and self._admit(sender[0], sender[1])
        except Exception:  # a check that fails must not take the reactor's handler down
            LOG.exception("sd_notify: checking the sender %s failed", sender)
            accepted = False
        if not accepted:
            self.refused += 1
            # One warning per socket: a flood of forged datagrams must not flood the log.
            log = LOG.warning if self.refused == 1 else LOG.debug
            pid, uid = (sender[0], sender[1]) if sender is not None else ("?", "?")
            log("sd_notify: refused a datagram from PID %s (uid %s), not the service", pid, uid)
        return accepted

    def _parse(self, message: str) -> None:
        for line in message.splitlines():
            key, _, value = line.partition("=")
            if key == "READY" and value == "1":
                self.ready = True
            elif key == "STATUS":
                self._statuses.append(value)
                self.status_count += 1
                if self._on_status is not None:
                    self._on_status(value)

    def summary(self) -> str | None:
        """What was dropped or left out, for the history; None when nothing was."""
        parts = []
        if self.status_count > STATUSES_KEPT:
            parts.append(
                f"{self.status_count} STATUS messages, the history keeps the last {STATUSES_KEPT}"
            )
        if self.refused:
            parts.append(f"{self.refused} datagrams from outside the service refused")
        if self.oversized:
            parts.append(f"{self.oversized} datagrams over {MAX_DATAGRAM} bytes dropped")
        return f"sd_notify: {'; '.join(parts)}" if parts else None

    def close(self) -> None:
        """Stop listening; later messages from the child are refused, harmlessly."""
        with contextlib.suppress(OSError):
            self._socket.close()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        on_note, self._on_note = getattr(self, "_on_note", None), None
        summary = self.summary() if on_note is not None else None
        if on_note is not None and summary is not None:
            on_note(summary)
