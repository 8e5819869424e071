"""What the stack commands show and record: prefixed output, state lines, the state file."""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from mirakuru.adapter.guard.stackstate import StackState
from mirakuru.cli.console import fit
from mirakuru.core.stack import Status

__all__ = ["COLUMNS", "Recorder", "StackConsole", "duration", "status_table", "use_colour"]

#: Our own lines fit this many columns.
COLUMNS = 80
_COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95")
_RESET = "\x1b[0m"
_LOUD = frozenset({Status.FAILED, Status.RESTARTING})
#: A service's log is moved aside to NAME.log.1 when it grows past this (a kept service
#: may print all afternoon).
LOG_LIMIT = 8 * 1024 * 1024


def use_colour(stream: IO[str], refused: bool) -> bool:
    """Colours on a terminal, unless refused or ``NO_COLOR`` is set."""
    return not refused and "NO_COLOR" not in os.environ and stream.isatty()


class StackConsole:
    """``name | line`` for the services' output (stdout), ``mirakuru: ...`` lines (stderr)."""

    def __init__(self, names: Iterable[str], *, quiet: bool, colour: bool) -> None:
        self.names = list(names)
        self.width = max((len(name) for name in self.names), default=0)
        self.quiet = quiet
        self._colour = colour
        self._lock = threading.Lock()

    def _label(self, name: str) -> str:
        label = name.ljust(self.width)
        if not self._colour:
            return label
        index = self.names.index(name) if name in self.names else 0
        return f"\x1b[{_COLOURS[index % len(_COLOURS)]}m{label}{_RESET}"

    def output(self, name: str, stream: str, line: str) -> None:
        """A line service ``name`` printed."""
        with self._lock:
            sys.stdout.write(f"{self._label(name)} | {line}\n")
            sys.stdout.flush()

    def change(self, name: str, status: Status, detail: str) -> None:
        """One line per state change (failures even when quiet)."""
        if self.quiet and status not in _LOUD:
            return
        self.say(f"{name}: {status.value}" + (f" {detail}" if detail else ""))

    def say(self, message: str, details: Iterable[str] = ()) -> None:
        """A message of ours, wrapped to 80 columns; then indented details as they are."""
        cleaned = fit(f"mirakuru: {message}", 10 * COLUMNS)  # control characters shown as ?
        lines = textwrap.wrap(cleaned, COLUMNS, subsequent_indent="    ") or [cleaned]
        with self._lock:
            sys.stdout.flush()
            sys.stderr.write("".join(f"{line}\n" for line in lines))
            for line in details:
                sys.stderr.write(f"    {line}\n")
            sys.stderr.flush()


def _started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


class Recorder:
    """Keeps ``state.json`` and each service's log in the stack's state directory."""

    def __init__(self, state: StackState, mode: str, names: Iterable[str]) -> None:
        self.state = state
        self.mode = mode
        self.names = list(names)
        self.run: Any = None
        #: More to record: ``{"services": {name: fields}, **top-level fields}``.
        self.details: Callable[[], dict[str, Any]] | None = None
        self._logs: dict[str, IO[str]] = {}
        self._identities: dict[int, float | None] = {}
        self._lock = threading.Lock()
        for name in self.names:
            # A new run starts a new log: what an earlier run printed is not this one's.
            self.state.log_path(name).unlink(missing_ok=True)

    def output(self, name: str, stream: str, line: str) -> None:
        """Append a line to service ``name``'s log."""
        with self._lock:
            log = self._logs.get(name)
            if log is None:
                log = self._logs[name] = self.state.open_log(name)
            log.write(line + "\n")
            log.flush()
            if log.tell() > LOG_LIMIT:
                log.close()
                path = self.state.log_path(name)
                os.replace(path, path.with_name(path.name + ".1"))
                self._logs[name] = self.state.open_log(name)

    def fresh(self, name: str) -> None:
        """Service ``name`` starts again: a new log, the last one kept as NAME.log.1 (it may
        say why the service died)."""
        with self._lock:
            log = self._logs.pop(name, None)
            if log is not None:
                log.close()
            path = self.state.log_path(name)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(path.name + ".1"))

    def change(self, name: str, status: Status, detail: str) -> None:
        """Write the state of every service again."""
        self.write()

    def write(self) -> None:
        """``state.json`` as it is now."""
        services = self.run.snapshot() if self.run is not None else {}
        details = self.details() if self.details is not None else {}
        for name, more in details.pop("services", {}).items():
            if name in services:
                services[name].update(more)
        for record in services.values():
            pid = record["pid"]
            if pid is not None and pid not in self._identities:
                self._identities[pid] = _started(pid)
            record["pid_started"] = self._identities.get(pid) if pid is not None else None
        self.state.write(
            {
                "stack_file": self.state.stack_file,
                "mode": self.mode,
                "pid": os.getpid(),
                "pid_started": _started(os.getpid()),
                "names": self.names,
                "written": time.time(),
                "services": services,
                **details,
            }
        )

    def close(self) -> None:
        """Close the logs and remove the state (the lock is dropped by the caller)."""
        with self._lock:
            for log in self._logs.values():
                log.close()
            self._logs.clear()


def duration(seconds: float | None) -> str:
    """``45s``, ``12m03s``, ``3h07m``; ``-`` for None."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def status_table(document: dict[str, Any]) -> list[str]:
    """The rows ``mirakuru status`` prints, each within 80 columns. Services a supervisor
    serves to test runs get a LAST USE column: ``in use``, or how long ago."""
    services: dict[str, dict[str, Any]] = document.get("services", {})
    width = max([len("SERVICE"), *(len(name) for name in services)])
    uses = any("in_use" in record for record in services.values())
    head = f"{'SERVICE':<{width}}  {'STATE':<10}  {'PID':>7}  {'PORT':>5}  {'UPTIME':>7}  RESTARTS"
    rows = [fit(head + ("  LAST USE" if uses else ""), COLUMNS + 1)]
    now = time.time()
    for name, record in services.items():
        since = record.get("since")
        uptime = duration(now - since if since else None)
        pid = record.get("pid") or "-"
        port = record.get("port") or "-"
        row = (
            f"{name:<{width}}  {record['status']:<10}  {pid!s:>7}  {port!s:>5}  {uptime:>7}"
            f"  {record.get('restarts', 0)!s:<8}"
        )
        if uses:
            row += f"  {_last_use(record, now)}"
        rows.append(fit(row.rstrip(), COLUMNS + 1))
    return rows


def _last_use(record: dict[str, Any], now: float) -> str:
    if record.get("in_use"):
        return "in use"
    last = record.get("last_use")
    return f"{duration(now - last)} ago" if last else "-"
