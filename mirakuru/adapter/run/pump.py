"""The output pump: a child's pipes are always drained, so it can never block on them.

Everything read is appended to a :class:`~mirakuru.adapter.run.spool.Spool` (memory first,
then an unlinked temporary file, up to a limit per stream) and is readable in order through
a blocking text stream, like the pipe it replaces. Blocks are scanned on the way through
for banner watchers and for a short tail kept for error messages, however much output was
left out of the spool.

The process-wide reactor thread drains the pipes from the moment the run is activated
(before the first readiness check) for the rest of the process's life; a waiter learns of
new output from the run it waits on.
"""

from __future__ import annotations

import collections
import contextlib
import os

try:
    import fcntl
except ImportError:  # not POSIX: importing must still work (start() refuses there)
    fcntl = None  # type: ignore[assignment]
import re
import threading
from collections.abc import Callable

from mirakuru.adapter.run.spool import MEMORY_SPOOL, Spool

__all__ = [
    "DEFAULT_LIMIT",
    "MEMORY_SPOOL",
    "TAIL_LINES",
    "TAIL_LINE_BYTES",
    "BannerWatch",
    "OutputPump",
    "Spool",
    "StreamPump",
]

#: How many of the last output lines of each stream are kept for error messages.
TAIL_LINES = 20
#: The most bytes of one line kept in the tail; the rest is cut (and the line says so), so
#: the tail and every error message quoting it stay small whatever the service prints.
TAIL_LINE_BYTES = 1024
#: Bytes read per drain call before giving others a turn.
_READ_SIZE = 1 << 20
#: A larger pipe means fewer wake-ups when the child prints a lot (best effort), and a
#: longer queue to work through before a banner written after a flood is seen: 1 MiB put
#: that banner 2-3 ms behind its write on a busy 2-core machine, 256 KiB under 1 ms (for
#: a 50 MiB flood that takes ~25% longer to drain, still faster than published).
_PIPE_SIZE = 1 << 18
#: Banners match whole lines up to this length; a longer line is scanned in pieces of it.
MAX_LINE = 64 << 20
#: The default most bytes of each stream kept for output(); the tail is kept regardless.
DEFAULT_LIMIT = 64 << 20


class BannerWatch:
    """Remembers whether, and where, a pattern first matched a line of one stream."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._needle = _literal(pattern)
        self.seen = False
        self.line: str | None = None
        #: Spool offset just past the matched line: where reading "after the banner" starts.
        self.end_offset = 0

    def scan_block(self, raw: bytes, base: int, start: int = 0, end: int | None = None) -> bool:
        """Look for the pattern in the whole lines ``raw[start:end]``; ``raw[0]`` is at spool
        offset ``base``.

        A literal banner is searched in the bytes in place and only its line is decoded: a
        flood of output costs a ``bytes.find`` per block, not a decoding of every byte.
        """
        if self.seen:
            return False
        end = len(raw) if end is None else end
        if self._needle is None:
            piece = raw[start:end]
            return self.scan(piece.decode("utf-8", "replace"), piece, base + start)
        at = raw.find(self._needle, start, end)
        if at < 0:
            return False
        newline = raw.rfind(b"\n", start, at)
        first = start if newline < 0 else newline + 1
        newline = raw.find(b"\n", at, end)
        last = end if newline < 0 else newline + 1
        line = raw[first:last]
        return self.scan(line.decode("utf-8", "replace"), line, base + first)

    def scan(self, text: str, raw: bytes, offset: int) -> bool:
        """Look for the pattern in ``text``, the decoding of whole lines ``raw`` that start at
        spool ``offset``; True on the first match."""
        if self.seen:
            return False
        match = self.pattern.search(text)
        if match is None:
            return False
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", max(match.end() - 1, match.start()))
        end = len(text) if end < 0 else end + 1
        self.line = text[start:end].rstrip("\n")
        # Newlines survive UTF-8 decoding one for one, so count them to find the byte offset.
        lines_through_match = text.count("\n", 0, end)
        position = 0
        for _ in range(lines_through_match):
            position = raw.index(b"\n", position) + 1
        self.end_offset = offset + (position if lines_through_match else len(raw))
        self.seen = True
        return True


#: What makes a pattern more than its literal text (with the flags below left unset).
_SPECIAL = frozenset(".^$*+?{}[]\\|()\n")
_NOT_LITERAL_FLAGS = re.IGNORECASE | re.VERBOSE | re.LOCALE
_NEWLINE = ord("\n")
#: Trailing newlines stripped one by one before falling back to a copying ``rstrip``.
_TRAILING_CHECK = 64


def _literal(pattern: re.Pattern[str]) -> bytes | None:
    """The UTF-8 bytes a plain-text pattern matches, or None for a real regular expression.

    Valid UTF-8 starts no character inside another, so these bytes occur in a block
    exactly where the text occurs in its decoding (U+FFFD would break that: excluded).
    """
    text = pattern.pattern
    if not text or pattern.flags & _NOT_LITERAL_FLAGS or "\ufffd" in text:
        return None
    if any(character in _SPECIAL for character in text):
        return None
    return text.encode("utf-8")


def _last_lines(block: bytes, start: int = 0, end: int | None = None) -> list[str]:
    """The last :data:`TAIL_LINES` lines of the whole lines ``block[start:end]``, decoding
    only those and copying nothing else."""
    end = len(block) if end is None else end
    stop = end
    while stop > start and block[stop - 1] == _NEWLINE and end - stop < _TRAILING_CHECK:
        stop -= 1
    if stop > start and block[stop - 1] == _NEWLINE:
        stop = start + len(block[start:stop].rstrip(b"\n"))  # rare: a run of empty lines
    first = stop
    for _ in range(TAIL_LINES):
        first = block.rfind(b"\n", start, first)
        if first < 0:
            first = start - 1
            break
    if stop - first - 1 <= TAIL_LINE_BYTES:  # no line can be too long: decode them at once
        return block[first + 1 : stop].decode("utf-8", "replace").split("\n")
    lines: list[str] = []
    begin = first + 1
    while True:
        newline = block.find(b"\n", begin, stop)
        finish = stop if newline < 0 else newline
        lines.append(_cut_line(block, begin, finish))
        if newline < 0:
            return lines
        begin = newline + 1


def _cut_line(block: bytes, begin: int, finish: int) -> str:
    """The line ``block[begin:finish]``, decoded; past :data:`TAIL_LINE_BYTES` cut, saying so."""
    if finish - begin <= TAIL_LINE_BYTES:
        return block[begin:finish].decode("utf-8", "replace")
    cut = begin + TAIL_LINE_BYTES
    while cut > begin and block[cut] & 0xC0 == 0x80:
        cut -= 1  # inside a UTF-8 sequence: cut before the character, not through it
    return f"{block[begin:cut].decode('utf-8', 'replace')} [... {finish - cut} more bytes cut]"


class StreamPump:
    """Drains one pipe into a spool, scanning whole lines for watchers and the tail."""

    def __init__(
        self,
        name: str,
        fd: int,
        limit: int | None = DEFAULT_LIMIT,
        changed: threading.Condition | None = None,
    ) -> None:
        self.name = name
        self._fd = fd
        self.spool = Spool(changed)
        #: The most bytes kept in the spool (its head); later output only feeds the tail.
        self.limit = limit
        #: Bytes not kept because the spool reached ``limit``.
        self.dropped = 0
        #: The last lines (made on the first line: most streams of a test print little).
        self.tail: collections.deque[str] | tuple[()] = ()
        self.watches: list[BannerWatch] = []
        #: Called (on the reading thread) the moment a watch first matches, before the
        #: block that matched is spooled: whoever waits for a banner hears of it at once.
        self.on_match: Callable[[], None] | None = None
        self.eof = False
        self._carry = bytearray()
        self._carry_offset = 0  # spool offset of the first byte not yet scanned
        os.set_blocking(fd, False)
        # Not a pipe, or over the system's limit: the default size works too.
        set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
        if set_pipe_size is not None:  # Linux only; elsewhere the default size works too
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, set_pipe_size, _PIPE_SIZE)

    def fileno(self) -> int:
        return self._fd

    def on_readable(self) -> bool:
        """Read what is available now; False once the pipe is at end of file."""
        self.drain()
        return not self.eof

    def drain(self) -> None:
        """Read up to a bounded amount without blocking and process it."""
        budget = _READ_SIZE * 8
        while budget > 0 and not self.eof:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._finish()
                return
            budget -= len(data)
            # Scanned before it is kept: a banner after a flood is reported without waiting
            # for its block (up to a pipe's worth, 1 MiB) to be written to the spool.
            self._scan(data)
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        if self.limit is None:
            self.spool.write(data)
            return
        room = self.limit - self.spool.size
        if room >= len(data):
            self.spool.write(data)
            return
        if room > 0:
            self.spool.write(data[:room])
        self.dropped += len(data) - max(room, 0)

    def finish(self) -> None:
        """Stop reading: what is still unread in the pipe is left there."""
        if not self.eof:
            self._finish()

    def _scan(self, data: bytes) -> None:
        # Only the new block is searched for a newline, and an unfinished line grows in a
        # bytearray: a long line costs linear time, however many blocks it spans.
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self._carry += data
            if len(self._carry) >= MAX_LINE:
                piece, self._carry = bytes(self._carry), bytearray()
                self._consume(piece)
            return
        begin = 0
        if self._carry:
            # The carried line ends at the block's first newline: consume it on its own so
            # the rest of the block is scanned in place (copying a flood costs more than
            # searching it).
            begin = data.find(b"\n") + 1
            self._carry += data[:begin]
            piece, self._carry = bytes(self._carry), bytearray()
            self._consume(piece)
        if begin < cut:
            self._consume(data, begin, cut)
        self._carry += data[cut:]

    def _consume(self, block: bytes, start: int = 0, end: int | None = None) -> None:
        """Scan the whole lines ``block[start:end]``, the next bytes of the stream."""
        end = len(block) if end is None else end
        base = self._carry_offset - start  # spool offset of block[0]
        self._carry_offset += end - start
        matched = False
        for watch in self.watches:
            matched = watch.scan_block(block, base, start, end) or matched
        if matched and self.on_match is not None:
            self.on_match()
        if not isinstance(self.tail, collections.deque):
            self.tail = collections.deque(maxlen=TAIL_LINES)
        self.tail.extend(_last_lines(block, start, end))

    def _finish(self) -> None:
        self.eof = True
        rest, self._carry = bytes(self._carry), bytearray()
        if rest:
            self._consume(rest)
        self.spool.finish()


class OutputPump:
    """The pumps of one process's captured streams."""

    def __init__(self, streams: dict[str, int], limit: int | None = DEFAULT_LIMIT) -> None:
        changed = threading.Condition() if streams else None
        self.streams = {name: StreamPump(name, fd, limit, changed) for name, fd in streams.items()}

    def sources(self) -> list[StreamPump]:
        """The pipes not yet at end of file."""
        return [pump for pump in self.streams.values() if not pump.eof]

    def tail(self) -> list[str]:
        """The last lines of every captured stream, stdout first."""
        lines: list[str] = []
        for name in ("stdout", "stderr"):
            pump = self.streams.get(name)
            # A copy first: the reactor's thread may be appending to the deque right now.
            recent = list(pump.tail) if pump is not None else []
            lines.extend(f"[{name}] {line}" for line in recent)
        return lines

    def dropped(self) -> dict[str, int]:
        """Bytes left out of each stream's spool because it reached its limit."""
        return {name: pump.dropped for name, pump in self.streams.items() if pump.dropped}

    def lost(self) -> dict[str, tuple[int, str]]:
        """Bytes each stream's spool could not keep because it failed, and why."""
        return {
            name: (pump.spool.lost, pump.spool.failure)
            for name, pump in self.streams.items()
            if pump.spool.failure is not None
        }

    def close(self) -> None:
        """Drain what is left once the reactor let go of the pipes; spools stay readable."""
        for pump in self.streams.values():
            if not pump.eof:
                pump.drain()
                pump.finish()

    def release(self) -> None:
        """Free the spools."""
        for pump in self.streams.values():
            pump.spool.release()
