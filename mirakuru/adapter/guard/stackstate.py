"""Where a running stack says what it runs: a private directory per stack file.

``up`` (in the foreground, or the supervisor of ``up --detach``) holds an exclusive lock
on ``lock`` for as long as it owns the services, and keeps ``state.json`` (each service's
status, PID, port, restarts) and ``logs/NAME.log`` up to date; ``status``, ``logs`` and
``down`` read them. A supervisor also listens on ``control`` (a unix socket) for test
runs that keep services between runs, and those runs take ``reuse.lock`` in turn, so
that finding or starting the supervisor and asking it for services is one step.

The directory is keyed by the stack file's path and lives under ``$XDG_RUNTIME_DIR/mirakuru``
or, without one, a per-user directory in the temporary directory. Every level is created
0700 and checked (ours, not a symlink, no access for others) before anything is read from
it or written to it: another user must not be able to plant a state file that makes
``down`` signal their choice of process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["StackState", "UnsafeStateDirectory", "peer_credentials", "state_root"]

#: A unix socket's path must fit in ``sun_path`` (108 bytes on Linux, 104 on macOS).
_SOCKET_PATH_MAX = 103
_LOCK_PAUSE = 0.02

_PRIVATE = 0o700
_CLAIM_TRIES = 5
_CLAIM_PAUSE = 0.01


class UnsafeStateDirectory(PermissionError):
    """A state directory that another user could tamper with: refused."""


def _check_private(path: Path) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeStateDirectory(f"{path} is not a plain directory (a symlink?): refused")
    if info.st_uid != os.geteuid():
        raise UnsafeStateDirectory(f"{path} belongs to uid {info.st_uid}, not to us: refused")
    if info.st_mode & 0o077:
        raise UnsafeStateDirectory(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}): refused"
        )


def _private_dir(path: Path) -> Path:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, _PRIVATE)
    _check_private(path)
    return path


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """The PID and user ID of the process at the other end of a unix socket."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", raw)
        return pid, uid
    return -1, os.geteuid() if sock.family == socket.AF_UNIX else -1  # no way to ask


def state_root() -> Path:
    """The per-user directory holding every stack's state (created when missing)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            _check_private(Path(runtime))
        except (OSError, UnsafeStateDirectory):
            pass  # not usable: fall back to the temporary directory
        else:
            return _private_dir(Path(runtime) / "mirakuru")
    return _private_dir(Path(tempfile.gettempdir()) / f"mirakuru-{os.geteuid()}")


class StackState:
    """The state directory of the stack declared in ``stack_file``."""

    def __init__(self, stack_file: str) -> None:
        self.stack_file = stack_file
        key = hashlib.sha256(os.fsencode(stack_file)).hexdigest()[:16]
        stacks = _private_dir(state_root() / "stacks")
        self.path = _private_dir(stacks / key)
        self.logs = _private_dir(self.path / "logs")
        self._lock: IO[bytes] | None = None

    @classmethod
    def every(cls) -> list[StackState]:
        """The state of every stack this user runs now (detached, foreground or kept)."""
        stacks = _private_dir(state_root() / "stacks")
        found = []
        for folder in sorted(stacks.iterdir()):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                _check_private(folder)
                with open(folder / "state.json", encoding="utf-8") as handle:
                    source = json.load(handle)["stack_file"]
                state = cls(source)
                if state.path == folder and state.running():
                    found.append(state)
        return found

    @property
    def control_path(self) -> Path:
        """The supervisor's control socket (see :mod:`mirakuru.cli.stack_keeper`)."""
        path = self.path / "control"
        if len(os.fsencode(path)) > _SOCKET_PATH_MAX:
            raise UnsafeStateDirectory(
                f"{path} is too long for a unix socket: set XDG_RUNTIME_DIR (or TMPDIR) to a"
                " shorter directory"
            )
        return path

    @contextlib.contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        """Hold ``reuse.lock`` for the block: one test run at a time finds, starts or asks
        the supervisor. ``TimeoutError`` after ``timeout`` seconds of waiting."""
        fd = os.open(self.path / "reuse.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{self.path / 'reuse.lock'} still held after {timeout:g} s by"
                            f" another test run starting services of {self.stack_file}"
                        ) from None
                    time.sleep(_LOCK_PAUSE)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- ownership ----------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the lock that says "this process runs the stack"; False if another has it."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        handle = os.fdopen(fd, "r+b")
        # A reader's shared lock (see running()) lasts microseconds: try a few times.
        for _ in range(_CLAIM_TRIES):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(_CLAIM_PAUSE)
                continue
            self._lock = handle
            return True
        handle.close()
        return False

    def release(self) -> None:
        """Say the stack no longer runs: remove the state, then drop the lock."""
        if self._lock is None:
            return
        (self.path / "state.json").unlink(missing_ok=True)
        self._lock.close()
        self._lock = None

    def running(self) -> bool:
        """Whether some process holds the lock (runs this stack) right now."""
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        with os.fdopen(fd, "r+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    # -- what runs ----------------------------------------------------------------------

    def write(self, document: dict[str, Any]) -> None:
        """Replace ``state.json`` atomically (readers never see half a document)."""
        partial = self.path / f"state.json.{os.getpid()}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
        os.replace(partial, self.path / "state.json")

    def read(self) -> dict[str, Any] | None:
        """The last state written, or None when the stack is not running."""
        try:
            fd = os.open(self.path / "state.json", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd) as handle:
            try:
                document: dict[str, Any] = json.load(handle)
            except ValueError:
                return None
        return document

    def log_path(self, name: str) -> Path:
        """Where service ``name``'s output is appended."""
        return self.logs / f"{name}.log"

    def open_log(self, name: str) -> IO[str]:
        """Service ``name``'s log, opened for appending (created 0600)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        return os.fdopen(os.open(self.log_path(name), flags, 0o600), "a", encoding="utf-8")
