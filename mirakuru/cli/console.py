"""What the command line shows on stderr: plain lines, or one live status line on a terminal."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from mirakuru.core import probes
from mirakuru.core.probes import Probe

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Console", "describe", "fit", "live_status", "terminal_columns", "wrap"]

#: Columns assumed when the terminal cannot tell its width.
FALLBACK_COLUMNS = 80


def _describe_leaf(probe: probes.Leaf) -> str:
    match probe:
        case probes.Tcp(host=host, port=port):
            return f"tcp {f'[{host}]' if ':' in host else host}:{port}"
        case probes.Http(url=url, method=method):
            parts = urllib.parse.urlsplit(url)
            where = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            verb = "" if method == "HEAD" else f" {method}"
            return f"{parts.scheme}{verb} {where}"
        case probes.PidFile(path=path):
            return f"pid file {path}"
        case probes.UnixSocket(path=path):
            return f"unix socket {path}"
        case probes.Banner(pattern=pattern):
            return f"output /{pattern.pattern}/"
    return "READY=1 on $NOTIFY_SOCKET"


def describe(probe: Probe) -> str:
    """A probe in a few words a shell user reads: ``tcp 127.0.0.1:6379``, ``output /READY/``."""
    if isinstance(probe, probes.AllOf):
        return " and ".join(map(describe, probe.probes))
    if isinstance(probe, probes.AnyOf):
        return " or ".join(map(describe, probe.probes))
    return _describe_leaf(probe)


def _columns_of(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def fit(text: str, columns: int) -> str:
    """``text`` on one row of ``columns`` cells: controls shown as ``?``, cut with ``...``.

    The last cell stays empty: writing into it makes some terminals wrap to a new row.
    """
    room = max(columns - 1, 1)
    cleaned = "".join("?" if not char.isprintable() else char for char in text)
    if sum(map(_columns_of, cleaned)) <= room:
        return cleaned
    kept, used = [], 0
    for char in cleaned:
        width = _columns_of(char)
        if used + width > room - 3:
            break
        kept.append(char)
        used += width
    return "".join(kept) + "..."[: max(room - used, 0)]


def terminal_columns(stream: IO[str]) -> int | None:
    """The width to wrap messages to: $COLUMNS, else ``stream``'s terminal; None if neither.

    Not a terminal and no $COLUMNS (a log file, CI): messages stay one line each.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return None
    return columns if columns > 0 else None


def wrap(text: str, columns: int | None, indent: str = "  ") -> str:
    """``text`` on lines that fit ``columns`` cells (later lines indented); as is if None.

    Words are never broken, so a path or URL stays whole (and searchable) on its line.
    """
    if columns is None:
        return text
    lines = textwrap.wrap(
        text,
        max(columns - 1, 20),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines)


class Console:
    """Our messages on stderr: plain lines, or a live status line on a terminal."""

    def __init__(self, stream: IO[str], *, quiet: bool, live: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._live = live and not quiet
        self._lock = threading.Lock()
        self._render: Callable[[], str] | None = None
        self._shown = False
        self._columns: int | None = None

    def info(self, message: str) -> None:
        """One line of progress, unless quiet."""
        if not self._quiet:
            self._write(f"mirakuru: {message}\n")

    def error(self, message: str, details: list[str] | tuple[str, ...] = ()) -> None:
        """An error with optional indented details (the service's lines, kept as they are);
        shown even when quiet, and wrapped to the terminal's width."""
        text = "".join(f"    {line}\n" for line in details)
        self._write(wrap(f"mirakuru: {message}", terminal_columns(self._stream)) + f"\n{text}")

    def passthrough(self, text: str) -> None:
        """A line of the service's own output."""
        self._write(text if text.endswith("\n") else text + "\n")

    def resized(self) -> None:
        """The terminal changed size: measure it again before the next frame."""
        self._columns = None

    def columns(self) -> int:
        """The terminal's width in cells (measured once, again after each resize)."""
        if self._columns is None:
            try:
                self._columns = os.get_terminal_size(self._stream.fileno()).columns or None
            except (OSError, ValueError, AttributeError):
                self._columns = None
            self._columns = self._columns or FALLBACK_COLUMNS
        return self._columns

    def show_status(self, render: Callable[[], str] | None) -> None:
        """Keep the line ``render`` draws under our output (None removes it)."""
        if not self._live:
            return
        with self._lock:
            self._render = render
            self._draw()

    def _draw(self) -> None:
        # Called with the lock held. \r + erase-line clears one row: the line never wraps.
        text = fit(self._render(), self.columns()) if self._render is not None else ""
        if self._shown or text:
            self._stream.write(f"\r\x1b[K{text}")
            self._stream.flush()
        self._shown = bool(text)

    def _write(self, text: str) -> None:
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[K")
                self._shown = False
            self._stream.write(text)
            if self._render is not None:
                self._draw()  # a fresh frame, never the one from before the output
            else:
                self._stream.flush()


@contextmanager
def _follow_resizes(console: Console) -> Iterator[None]:
    """Re-measure the terminal on SIGWINCH (only possible from the main thread)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        console.resized()

    try:
        previous = signal.signal(signal.SIGWINCH, handle)
    except ValueError:  # not the main thread: the width stays as first measured
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


@contextmanager
def live_status(console: Console, render: Callable[[], str], period: float = 0.1) -> Iterator[None]:
    """Show ``render``'s line, refreshed every ``period`` seconds, while the block runs.

    The first frame comes after one period, so a quick start shows no line at all.
    """
    done = threading.Event()

    def tick() -> None:
        while not done.wait(period):
            console.show_status(render)

    thread = threading.Thread(target=tick, name="mirakuru-status", daemon=True)
    with _follow_resizes(console):
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(1.0)
            console.show_status(None)
