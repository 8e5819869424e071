"""Keeping services between test runs: the test run's side.

:func:`attach` takes the stack's ``reuse.lock`` (so two test runs, or every xdist worker of
one, find or start one supervisor and ask it one after the other), starts the supervisor if
none runs (in its own session, so it outlives the run), asks it for the services, and checks
what it answers before anything is used: each process is the one recorded (PID and start
time), belongs to this user, and is still in its cgroup. The returned :class:`Lease` keeps
the connection open while the run uses the services; closing it starts their idle time.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mirakuru.adapter.guard.stackstate import StackState, peer_credentials
from mirakuru.adapter.spawn import cgroup, identity

if TYPE_CHECKING:
    from mirakuru.core.lifecycle import State, StateChange
    from mirakuru.core.stack import StackSpec

__all__ = ["KeptFailed", "KeptService", "Lease", "ReuseUnavailable", "attach"]

#: How long a freshly started supervisor may take to listen.
_SPAWN_WAIT = 30.0
#: Environment variables of the test run a supervisor must not inherit: it outlives the run
#: and is no test process (pytest-xdist and pytest-cov recognise their own by these).
_NOT_INHERITED = ("PYTEST_", "COV_CORE_", "MIRAKURU_WATCHDOG")
_TAIL = 20
#: How often a client tries a supervisor that is still setting up its socket.
_RETRY = 0.05

#: ``on_change(service, status, detail)`` while the supervisor starts services.
ChangeSink = Callable[[str, str, str], None]


class ReuseUnavailable(Exception):
    """Services of this stack cannot be kept: the test run starts its own, as without reuse."""


class KeptFailed(Exception):
    """The supervisor could not start a service; ``output_tail`` holds its last output."""

    def __init__(self, message: str, tail: Sequence[str] = (), timeout: bool = False) -> None:
        super().__init__(message)
        self.output_tail = list(tail)
        self.timed_out = timeout


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


def _answer(
    sock: socket.socket, pending: bytearray, deadline: float, on_change: ChangeSink | None
) -> dict[str, Any]:
    """The supervisor's final answer to a request; ``change`` events go to ``on_change``."""
    while True:
        while b"\n" in pending:
            cut = pending.index(b"\n")
            line = bytes(pending[:cut])
            del pending[: cut + 1]
            event: dict[str, Any] = json.loads(line)
            if event.get("event") != "change":
                return event
            if on_change is not None:
                on_change(event["service"], event["status"], event["detail"])
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the supervisor did not answer in time")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the supervisor closed the connection before answering")
        pending += chunk


class KeptService:
    """A service kept between test runs, as a test sees it: its process belongs to the
    stack's supervisor. ``stop()`` and ``start()`` ask the supervisor to do them."""

    def __init__(self, lease: Lease, name: str, record: dict[str, Any], verdict: str) -> None:
        self._lease = lease
        self.name = name
        self.verdict = verdict
        self._update(record)

    def _update(self, record: dict[str, Any]) -> None:
        self.command: str = record["command"]
        self.port: int | None = record["port"]
        self.ports: dict[str, int] = dict(record["ports"])
        self.pid: int | None = record["pid"]
        self._started: float | None = record["started"]
        self._log: str = record["log"]
        self.kept_since: float | None = record.get("kept_since")

    @property
    def attached(self) -> bool:
        """Whether this run found it running (and healthy) rather than starting it."""
        return self.verdict == "attach"

    @property
    def supervisor_pid(self) -> int:
        """The PID of the supervisor that keeps it."""
        return self._lease.supervisor

    @property
    def state(self) -> State:
        """``running`` while its process is the one started, ``stopped`` otherwise."""
        from mirakuru.core.lifecycle import State

        return State.RUNNING if self.running() else State.STOPPED

    @property
    def history(self) -> tuple[StateChange, ...]:
        """Kept by the supervisor, in its log: nothing here."""
        return ()

    def running(self) -> bool:
        """Whether the service's process is still the one the supervisor started."""
        return self.pid is not None and identity.start_time(self.pid) == self._started

    def output_tail(self) -> list[str]:
        """The last lines the service printed (from the supervisor's log of it)."""
        try:
            with open(self._log, encoding="utf-8", errors="replace") as handle:
                return [line.rstrip("\n") for line in handle.readlines()[-_TAIL:]]
        except OSError:
            return []

    def stop(self) -> KeptService:
        """Stop the service (the supervisor does; the next run starts it afresh)."""
        self._lease.request({"op": "stop", "name": self.name})
        self.pid = None
        return self

    def start(self) -> KeptService:
        """Start it again after :meth:`stop` (on the same port when it is free)."""
        answer = self._lease.request({"op": "start", "name": self.name})
        self._update(answer["services"][self.name])
        return self

    def __repr__(self) -> str:
        return (
            f"<KeptService {self.name!r}: {self.command!r} pid {self.pid},"
            f" kept by pid {self.supervisor_pid}>"
        )


class Lease:
    """A test run's hold on kept services: open while it uses them."""

    def __init__(
        self, state: StackState, sock: socket.socket, answer: dict[str, Any], timeout: float
    ) -> None:
        self.state = state
        self.supervisor: int = answer["supervisor"]
        self.verdicts: dict[str, str] = dict(answer["verdicts"])
        self._sock: socket.socket | None = sock
        self._pending = bytearray()
        self._timeout = timeout
        self.services = {
            name: KeptService(self, name, record, self.verdicts.get(name, "missing"))
            for name, record in answer["services"].items()
        }

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request; the supervisor's answer (KeptFailed when it failed)."""
        if self._sock is None:
            raise ConnectionError("the lease on the kept services is closed")
        _send(self._sock, message)
        answer = _answer(self._sock, self._pending, time.monotonic() + self._timeout, None)
        if answer["event"] == "failed":
            raise KeptFailed(
                answer["message"], answer.get("tail", ()), answer.get("timeout", False)
            )
        return answer

    def close(self) -> None:
        """The run no longer uses the services: their idle time starts."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(_NOT_INHERITED)}


def _spawn(state: StackState, spec: StackSpec, idle: float) -> None:
    """Start a supervisor for test runs, in its own session; return once it listens."""
    from mirakuru.cli.stack_supervisor import report_lines

    reading, writing = os.pipe()
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    log = os.open(state.path / "supervisor.log", flags, 0o600)
    command = [sys.executable, "-m", "mirakuru.cli.stack_supervisor", "--report-fd", str(writing)]
    command += ["--keep", "--idle", repr(idle), "--file", spec.source]
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(writing,),
            start_new_session=True,
            env=_environment(),
            cwd=spec.root if os.path.isdir(spec.root) else "/",
        )
    finally:
        os.close(writing)
        os.close(log)
    try:
        for line in report_lines(reading, time.monotonic() + _SPAWN_WAIT):
            event = json.loads(line) if line is not None else {"event": "silent"}
            if event["event"] in ("ready", "already"):
                # It lives on in its own session: this run will not wait for it.
                child.returncode = 0
                return
            if event["event"] != "change":
                break
    finally:
        os.close(reading)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(5)
    raise ReuseUnavailable(
        f"the supervisor for {spec.source} did not start; see {state.path / 'supervisor.log'}"
    )


def _connect(state: StackState, deadline: float) -> socket.socket | None:
    """A connection to the running supervisor, its credentials checked; None if none runs."""
    while True:
        document = state.read() if state.running() else None
        if document is None and not state.running():
            return None
        if document is not None and document.get("mode") == "foreground":
            raise ReuseUnavailable(
                f"{state.stack_file} runs in the foreground (mirakuru up, pid"
                f" {document.get('pid')}): its services are not kept for test runs"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(os.fspath(state.control_path))
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise ReuseUnavailable(
                    f"the supervisor of {state.stack_file} does not answer on {state.control_path}"
                ) from None
            time.sleep(_RETRY)  # it holds the lock but is not listening yet
            continue
        pid, uid = peer_credentials(sock)
        owner = (state.read() or {}).get("pid")
        if uid != os.geteuid() or (pid > 0 and owner is not None and pid != owner):
            sock.close()
            raise ReuseUnavailable(
                f"{state.control_path} is served by pid {pid} (uid {uid}), not by the stack's"
                f" supervisor (pid {owner}): refused"
            )
        return sock


def _verify(services: dict[str, dict[str, Any]]) -> str | None:
    """Why the services answered cannot be used, or None: each is the process recorded,
    this user's, and still in its cgroup."""
    import psutil

    for name, record in services.items():
        pid = record["pid"]
        if pid is None:
            if record["status"] == "completed":
                continue
            return f"{name} has no process ({record['status']})"
        if identity.start_time(pid) != record["started"]:
            return f"{name}: pid {pid} is no longer the process that was started"
        try:
            owner = psutil.Process(pid).uids().real
        except psutil.Error:
            return f"{name}: pid {pid} is gone"
        if owner != os.geteuid():
            return f"{name}: pid {pid} belongs to uid {owner}, not to us"
        group = record["cgroup"]
        if group is not None and not cgroup.Cgroup(group).holds(pid):
            return f"{name}: pid {pid} left its cgroup {group}"
    return None


def _end(state: StackState) -> None:
    from mirakuru.cli.stack_commands import down

    down(state, say=lambda _: None)


def attach(
    spec: StackSpec,
    names: Sequence[str],
    *,
    idle: float,
    timeout: float,
    on_change: ChangeSink | None = None,
) -> Lease:
    """Kept services ``names`` (and their dependencies) of ``spec``, ready, for this run.

    Raises :class:`KeptFailed` when a service cannot be started (nothing of this request
    is left running), :class:`ReuseUnavailable` when nothing can be kept for this stack.
    """
    from mirakuru import __version__

    try:
        state = StackState(spec.source)
    except PermissionError as error:
        raise ReuseUnavailable(str(error)) from None
    request = {
        "op": "ensure",
        "version": __version__,
        "source": spec.source,
        "declaration": spec.to_dict(),
        "names": list(names),
        "idle": idle,
    }
    problem: str | None = None
    with state.exclusive(timeout):
        deadline = time.monotonic() + timeout
        for _ in range(2):
            sock = _connect(state, deadline)
            if sock is None:
                _spawn(state, spec, idle)
                sock = _connect(state, deadline)
                if sock is None:
                    raise ReuseUnavailable(f"the supervisor of {spec.source} exited at once")
            pending = bytearray()
            try:
                _send(sock, request)
                answer = _answer(sock, pending, deadline, on_change)
            except (ConnectionError, BrokenPipeError):
                # It was going away (mirakuru down, the idle limit): ask the next one.
                sock.close()
                problem = "the supervisor went away while asked"
                continue
            except (OSError, ValueError):
                sock.close()
                raise
            if answer["event"] == "failed":
                sock.close()
                tail = answer.get("tail", ())
                raise KeptFailed(answer["message"], tail, answer.get("timeout", False))
            if answer["event"] == "unkept":
                sock.close()
                raise ReuseUnavailable(answer["why"])
            if answer["event"] == "refused":
                problem = str(answer.get("why", "refused"))
            else:
                problem = _verify(answer["services"])
                if problem is None:
                    return Lease(state, sock, answer, timeout)
            # Another version's supervisor, or an answer that does not hold up: replace it.
            sock.close()
            _end(state)
    raise ReuseUnavailable(f"the supervisor of {spec.source} could not be replaced ({problem})")
