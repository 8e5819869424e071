"""One service for every pytest-xdist worker of a run: the first starts it, the last stops it.

State lives in a directory under the run's shared temporary root. An ``fcntl`` lock
serialises start and stop. Each worker holds a presence file (named after its PID and
process start time, so a crashed worker's is recognised as dead) from session start until
its last test is done; the owner stops the service once no other live worker holds one.
Only the worker that started the service (the owner) ever signals it; the watchdog
registered at start covers an owner that is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from mirakuru.adapter.paths import private_directory

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.lifecycle import State, StateChange

__all__ = [
    "Share",
    "SharedService",
    "SharedServiceGone",
    "arrive",
    "leave",
    "share_key",
    "write_json",
]

#: How often a waiting worker looks at the lock or the leases again.
_RECHECK = 0.02


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all: a worker reading it at any moment
    sees the old file, none, or the new one, never a part."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)


class SharedServiceGone(RuntimeError):
    """The worker that started a shared service is gone, and the service with it."""


def _identity(pid: int) -> float | None:
    """The start time of process ``pid``, or None when no such process runs."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.Error:
        return None


def _alive(pid: int, started: float) -> bool:
    identity = _identity(pid)
    return identity is not None and abs(identity - started) < 0.01


def _presence(shared_root: Path) -> Path:
    return shared_root / "workers" / f"{os.getpid()}-{_identity(os.getpid())!r}"


def share_key(name: str, declared_in: str | None) -> str:
    """The state directory's name for the shared service declared as fixture ``name`` in
    the file ``declared_in``: two conftests may each declare a service of the same name."""
    where = os.path.abspath(declared_in) if declared_in else ""
    digest = hashlib.sha256(f"{where}\0{name}".encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]
    return f"{readable}-{digest}"


def arrive(shared_root: Path) -> None:
    """Say that this worker may still use shared services (at its session start)."""
    presence = _presence(shared_root)
    private_directory(presence.parent)
    presence.touch()


def leave(shared_root: Path) -> None:
    """Say that this worker runs no more tests (before its session fixtures are torn down)."""
    _presence(shared_root).unlink(missing_ok=True)


class SharedService:
    """A read-only view of a shared service another worker started: it never signals it."""

    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name = name
        self.command: str = data["command"]
        self.port: int | None = data["port"]
        self.pid: int = data["pid"]
        self.owner_pid: int = data["owner_pid"]
        self._data = data

    @property
    def state(self) -> State:
        """``running`` while the owner's process is alive, ``failed`` once it is gone."""
        from mirakuru.core.lifecycle import State

        return State.RUNNING if self.running() else State.FAILED

    @property
    def history(self) -> tuple[StateChange, ...]:
        """Kept by the owner worker only."""
        return ()

    def running(self) -> bool:
        """Whether the service's process is still the one the owner started."""
        return _alive(self.pid, self._data["pid_started"])

    def output_tail(self) -> list[str]:
        """The owner's output tail as it was when the service became ready."""
        return list(self._data.get("tail", ()))

    def output(self) -> TextIO | None:
        """None: the service's output is captured in the owner worker only."""
        return None

    def err_output(self) -> TextIO | None:
        """None: the service's output is captured in the owner worker only."""
        return None

    def stopped(self) -> contextlib.AbstractContextManager[Self]:
        """Refused: other workers use this service, and only its owner may signal it."""
        raise RuntimeError(
            f"shared service {self.name!r} cannot be stopped from a test: other workers use"
            " it (declare it without shared=True to stop it in a test)"
        )

    def __repr__(self) -> str:
        return (
            f"<SharedService {self.name!r}: {self.command!r} pid {self.pid},"
            f" started by pid {self.owner_pid}>"
        )


class Share:
    """This worker's hold on one shared service (as its owner, or attached to it)."""

    def __init__(
        self,
        root: Path,
        name: str,
        lock_timeout: float,
        drain_timeout: float,
        key: str | None = None,
    ) -> None:
        self.shared_root = root
        self.root = root / (key or name)
        self.name = name
        self.lock_timeout = lock_timeout
        self.drain_timeout = drain_timeout
        self.executor: SimpleExecutor | None = None
        self.view: SharedService | None = None
        self._own = _presence(root)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX only: imported when a service is actually shared

        private_directory(self.root)
        with open(self.root / "lock", "a") as handle:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"shared service {self.name!r}: lock {self.root / 'lock'} still"
                            f" held after {self.lock_timeout} s"
                        ) from None
                    # Another worker holds the lock while it starts or stops the service.
                    threading.Event().wait(_RECHECK)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.root / "service.json").read_text())
        except FileNotFoundError:
            return None
        return data

    def _write(self, data: dict[str, Any]) -> None:
        write_json(self.root / "service.json", data)

    def acquire(self, start: Callable[[], SimpleExecutor]) -> SimpleExecutor | SharedService:
        """Attach to the running service, or start it (under the lock) and own it."""
        __tracebackhide__ = True
        with self._locked():
            data = self._read()
            if data is not None and data["status"] == "running":
                view = SharedService(self.name, data)
                if not _alive(data["owner_pid"], data["owner_started"]) or not view.running():
                    raise SharedServiceGone(
                        f"shared service {self.name!r} (pid {data['pid']}) was started by"
                        f" worker {data['owner_worker']} (pid {data['owner_pid']}), which is"
                        " gone; the service went with it. Earlier errors of that worker say why."
                    )
                self.view = view
                return view
            executor = start()
            self.executor = executor
            process = executor.process
            pid = process.pid if process is not None else -1
            self._write(
                {
                    "status": "running",
                    "command": executor.command,
                    "port": getattr(executor, "port", None),
                    "pid": pid,
                    "pid_started": _identity(pid) if pid > 0 else None,
                    "owner_pid": os.getpid(),
                    "owner_started": _identity(os.getpid()),
                    "owner_worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                    "tail": executor.output_tail(),
                }
            )
            return executor

    def _others(self) -> list[Path]:
        """Presence files of other workers that are still alive."""
        live = []
        folder = self.shared_root / "workers"
        for lease in folder.iterdir() if folder.exists() else ():
            if lease == self._own:
                continue
            pid, _, started = lease.name.partition("-")
            with contextlib.suppress(ValueError):
                if _alive(int(pid), float(started)):
                    live.append(lease)
        return live

    def release(self) -> None:
        """Attached: nothing. The owner waits (bounded) for the other workers, then stops."""
        __tracebackhide__ = True
        if self.executor is None:
            return
        executor = self.executor
        (self.root / "draining").touch()
        deadline = time.monotonic() + self.drain_timeout
        while True:
            with self._locked():
                done = not self._others() or not executor.running()
                if done or time.monotonic() > deadline:
                    data = self._read() or {}
                    self._write({**data, "status": "stopped"})
                    (self.root / "draining").unlink(missing_ok=True)
                    executor.stop()
                    return
            # Other workers still run tests; their sessions end on their own schedule.
            threading.Event().wait(_RECHECK * 5)
