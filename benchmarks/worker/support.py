"""Plumbing shared by the worker's scenarios: context, clocks, fixtures, cleanup."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.catalog import TOKEN_VAR
from benchmarks.fixtures import service

SERVICE = Path(service.__file__).resolve()
BANNER = service.BANNER

#: A trivial service for throughput scenarios; `exec` keeps it one process and
#: `sh` spawns far faster than another Python interpreter.
TRIVIAL = ["sh", "-c", "echo ready; exec sleep 100"]
TRIVIAL_BANNER = "ready"


class ApiMissing(Exception):
    """The implementation under test lacks an API this scenario needs."""


@dataclass
class Context:
    """Everything one scenario run needs, and where it records its samples."""

    impl: str
    quick: bool
    mirakuru: Any
    workdir: Path
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    _scratch_count: int = 0

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def pick_float(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def record(self, key: str, value: float | None) -> None:
        self.metrics.setdefault(key, []).append(value)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def scratch(self, name: str) -> Path:
        """A fresh empty directory under the run's temp dir."""
        self._scratch_count += 1
        path = self.workdir / f"{name}-{self._scratch_count}"
        path.mkdir()
        return path


def clock() -> float:
    """CLOCK_MONOTONIC, the same system-wide clock the fixtures stamp with."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def service_command(mode: str, *args: str) -> list[str]:
    return [sys.executable, str(SERVICE), mode, *args]


def free_port() -> int:
    """Ask the OS for a currently free port (never a fixed one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_stamp(path: Path, timeout: float = 10.0) -> float:
    """Wait for a fixture's ready stamp; it is written just after readiness."""
    deadline = clock() + timeout
    while True:
        try:
            return float(path.read_text(encoding="ascii"))
        except FileNotFoundError:
            if clock() > deadline:
                raise TimeoutError(f"fixture never wrote {path}") from None
            time.sleep(0.002)


def start_to_stamp_ms(executor: Any, stamp: Path) -> float:
    """Milliseconds from the fixture's stamp (written at readiness) to start() returning."""
    try:
        executor.start()
        returned = clock()
        ready = read_stamp(stamp)
    finally:
        executor.stop()
    return (returned - ready) * 1000.0


def wait_for_file(path: Path, timeout: float) -> float | None:
    """Seconds until ``path`` exists, or None if it did not within ``timeout``."""
    start = clock()
    while not path.exists():
        if clock() - start > timeout:
            return None
        time.sleep(0.005)
    return clock() - start


def bounded_call(action: Callable[[], object], limit: float) -> float | None:
    """Seconds ``action`` took, or None if it had not returned within ``limit``.

    The action runs in a daemon thread, so a hang becomes a reported miss instead of a
    worker that never answers; an exception inside it is re-raised here.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            failure.append(exc)

    begin = clock()
    thread = threading.Thread(target=target, name="bounded-call", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return None
    if failure:
        raise failure[0]
    return clock() - begin


def token_processes() -> list[psutil.Process]:
    """Live processes started (directly or not) by this worker run."""
    token = os.environ.get(TOKEN_VAR)
    if not token:
        return []
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(TOKEN_VAR) != token:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            # Gone already, or not ours to read.
            continue
        found.append(proc)
    return found


_SIGKILL_BIT = 1 << (9 - 1)  # SIGKILL in the /proc/<pid>/status signal masks
_PF_EXITING = 0x4  # task flag in /proc/<pid>/stat: the process is exiting


def is_dying(pid: int) -> bool:
    """Already killed, just not reaped yet: SIGKILL pending, or exiting.

    An implementation that SIGKILLs a tree and returns is correct even though,
    for a few microseconds, the kernel still lists the victims as sleeping.
    """
    proc_dir = Path("/proc") / str(pid)
    try:
        status = (proc_dir / "status").read_text()
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return True  # gone
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigPnd", "ShdPnd") and int(value.strip(), 16) & _SIGKILL_BIT:
            return True
    flags = int(stat.rpartition(")")[2].split()[6])
    return bool(flags & _PF_EXITING)


def kill_leftovers() -> list[str]:
    """SIGKILL every process this worker run left behind; return what they were."""
    killed: list[str] = []
    for _ in range(5):  # a dying parent may still fork: sweep a few times
        procs = token_processes()
        if not procs:
            break
        for proc in procs:
            name = short_name(proc)
            try:
                proc.kill()
                killed.append(name)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=2)
    return killed


def short_name(proc: psutil.Process) -> str:
    """``sleep 600`` or ``python watchdog.py``: enough to tell what it was."""
    try:
        argv = proc.cmdline()
    except psutil.Error:
        return f"pid {proc.pid}"
    words = [Path(argv[0]).name if argv else "?"]
    operands = [Path(a).name if "/" in a else a for a in argv[1:] if not a.startswith("-")]
    words += operands[:2]
    return " ".join(words)[:60]


def describe(names: list[str], limit: int = 3) -> str:
    """``2x sleep 600, python service.py``: a short summary of process names."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    parts = [f"{n}x {name}" if n > 1 else name for name, n in counts.items()]
    more = f" (+{len(parts) - limit} more kinds)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more
