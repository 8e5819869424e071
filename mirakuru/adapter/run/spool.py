"""The spool behind ``output()``: an append-only byte log with blocking readers.

Memory first, then an unlinked temporary file, so a quiet service costs no descriptor and
a chatty one no memory. A spool that cannot be made or grown (a full disk, a file size
limit, no free descriptor) keeps what it has and counts the rest: the pump that feeds it
must go on draining the child's pipe whatever happens here.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import tempfile
import threading
import weakref
from collections.abc import Callable

__all__ = ["MEMORY_SPOOL", "Spool"]

LOG = logging.getLogger(__name__)

#: Output up to this size stays in memory; beyond it, the spool moves to a temporary file.
MEMORY_SPOOL = 64 << 10


class Spool:
    """An append-only byte log with blocking readers: in memory while small, then on an
    unlinked temporary file, so memory stays bounded however much the child prints."""

    def __init__(self, changed: threading.Condition | None = None) -> None:
        self._memory = bytearray()
        self._fd: int | None = None
        self._release: Callable[[], object] | None = None
        self._size = 0
        self._closed = False  # no more writes will come
        self._released = False
        #: Why the spool stopped keeping output (its file could not be made or written).
        self.failure: str | None = None
        #: Bytes not kept since then.
        self.lost = 0
        # One condition may serve all the spools of a run: readers re-check their own.
        self._changed = changed if changed is not None else threading.Condition()

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def on_disk(self) -> bool:
        """Whether the spool holds a descriptor (it spilled past :data:`MEMORY_SPOOL`)."""
        return self._fd is not None

    def write(self, data: bytes) -> None:
        """Append ``data`` and wake blocked readers.

        Never raises for want of disk or descriptors: the spool then keeps what it has,
        counts the rest as :attr:`lost` and says why in :attr:`failure`. The pipe must
        still be drained, or the child would block on it.
        """
        if self._released:
            return
        if self.failure is not None:
            self.lost += len(data)
            return
        view = memoryview(data)
        if self._fd is None:
            # Memory is filled to the brim first: should the file fail, that much is kept.
            room = max(0, MEMORY_SPOOL - self._size)
            with self._changed:
                self._memory += view[:room]
                self._size += min(room, len(view))
                self._changed.notify_all()
            view = view[room:]
            if not view:
                return
        try:
            if self._fd is None:
                self._spill()
            assert self._fd is not None
            while view:
                written = os.pwrite(self._fd, view, self._size)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
                with self._changed:
                    self._size += written
                    self._changed.notify_all()
        except OSError as error:
            self._fail(error, len(view))

    def _fail(self, error: OSError, unwritten: int) -> None:
        self.failure = str(error)
        self.lost += unwritten
        LOG.warning("output no longer kept (the output spool failed: %s)", error)

    def _spill(self) -> None:
        fd, path = tempfile.mkstemp(prefix="mirakuru-output-")
        try:
            os.unlink(path)
            _write_all(fd, self._memory)
        except BaseException:
            os.close(fd)  # the memory part stays where it was, still readable
            raise
        # Closed on release(), or when the spool is collected (an executor dropped after
        # stop() still holds its output): no descriptor leak, no ResourceWarning.
        self._release = weakref.finalize(self, os.close, fd)
        with self._changed:
            self._fd = fd
            self._memory = bytearray()

    def finish(self) -> None:
        """No more data will come: readers see end of file once they catch up."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def read_at(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``position``; waits for data unless finished."""
        with self._changed:
            self._changed.wait_for(lambda: self._size > position or self._closed)
            available = self._size - position
            if available <= 0 or self._released:
                return b""
            if self._fd is None:
                return bytes(self._memory[position : position + min(size, available)])
            fd = self._fd
        return os.pread(fd, min(size, available), position)

    def release(self) -> None:
        """Free the spool's memory and file; readers see end of file from now on."""
        self.finish()
        with self._changed:
            self._released = True
            self._memory = bytearray()
        if self._release is not None:
            self._release()

    def reader(self, position: int = 0) -> io.TextIOWrapper:
        """A new text stream reading this spool from byte ``position``."""
        raw = _SpoolRaw(self, position)
        return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", errors="replace")


def _write_all(fd: int, data: bytes | bytearray) -> None:
    """Write ``data`` at the start of ``fd``, through short writes; OSError if it cannot."""
    view = memoryview(data)
    position = 0
    while position < len(view):
        written = os.pwrite(fd, view[position:], position)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        position += written


class _SpoolRaw(io.RawIOBase):
    """A raw, blocking, read-only view of a :class:`Spool` with its own position."""

    def __init__(self, spool: Spool, position: int) -> None:
        super().__init__()
        self._spool = spool
        self._position = position

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._spool.read_at(self._position, len(buffer))
        except (OSError, ValueError):
            return 0  # released spool: end of file
        count = len(data)
        buffer[:count] = data
        self._position += count
        return count
