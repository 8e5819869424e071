"""The supervisor's control socket: test runs ask it for services and keep them between runs.

A test run with reuse on connects to ``control`` in the stack's private state directory
and sends one JSON line: ``{"op": "ensure", "version", "source", "declaration", "names",
"idle"}``. The supervisor compares each wanted service with what it keeps under that name
(the definition's digest, then the process's identity, then its probe, asked again now),
stops what changed or broke together with what depends on it, starts what is missing, and
answers with ``{"event": "ready", "services": {...}}`` (or ``"failed"``), after a
``"change"`` line per state change. The connection then stays open as a lease: while it
is, the services it asked for are in use; once it closes, their idle time starts. Two
more requests act on one service for a test that stops or starts it: ``{"op": "stop",
"name"}`` and ``{"op": "start", "name"}``.

Only this user can reach the socket (it lies in a 0700 directory), and each peer's
credentials are checked on accept all the same.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import socket
import time
from typing import Any

import psutil

from mirakuru._stack_engine import StackFailed, StackRun
from mirakuru.adapter.guard.stackstate import StackState, peer_credentials
from mirakuru.adapter.readiness.evaluate import attempt
from mirakuru.adapter.spawn import identity
from mirakuru.cli.commands import Interrupted
from mirakuru.cli.stack_view import Recorder
from mirakuru.core.reuse import Kept, expired, judge, next_expiry, plan
from mirakuru.core.stack import StackError, Status, parse_stack

__all__ = ["PROBE_AGAIN", "Keeper"]

#: The longest one probe attempt may take when a kept service is checked again.
PROBE_AGAIN = 5.0
#: A supervisor for test runs that has nothing left to keep ends after this long unasked.
_EMPTY_GRACE = 10.0
#: How long a write to a client may block before that client is dropped.
_SEND_TIMEOUT = 5.0
_TICK = 0.5
_ALIVE = frozenset({Status.STARTING, Status.RUNNING, Status.READY})


class _Client:
    """One connection: its unread bytes, and the services it holds once answered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""
        self.holds: tuple[str, ...] = ()

    def send(self, **event: Any) -> bool:
        try:
            self.sock.sendall((json.dumps(event) + "\n").encode())
        except OSError:
            return False
        return True


class Keeper:
    """Serves test runs from a supervisor: ensures services, holds leases, ends idle ones."""

    def __init__(
        self,
        state: StackState,
        run: StackRun,
        recorder: Recorder,
        *,
        idle: float | None,
        keep: bool,
    ) -> None:
        from mirakuru import __version__

        self.state = state
        self.run = run
        self.recorder = recorder
        self.idle = idle
        self.keep = keep
        self.version = __version__
        self.fingerprints = {name: run.spec.fingerprint(name, __version__) for name in run}
        now = time.time()
        self.last_use: dict[str, float] = dict.fromkeys(run, now)
        self.kept_since: dict[str, float] = dict.fromkeys(run, now)
        self.clients: dict[int, _Client] = {}
        self.listener: socket.socket | None = None
        self.current: _Client | None = None
        self.quiet_since = time.monotonic()
        recorder.details = self.details

    # -- the record ---------------------------------------------------------------------

    def in_use(self) -> dict[str, int]:
        """How many open leases hold each service."""
        counts: dict[str, int] = {}
        for client in list(self.clients.values()):
            for name in client.holds:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def details(self) -> dict[str, Any]:
        """What ``state.json`` adds for kept services: last use, leases, digests, limits."""
        counts = self.in_use()
        services = {
            name: {
                "fingerprint": self.fingerprints.get(name),
                "kept_since": self.kept_since.get(name),
                "last_use": None if counts.get(name) else self.last_use.get(name),
                "in_use": counts.get(name, 0),
            }
            for name in list(self.fingerprints)
        }
        return {"services": services, "idle": self.idle, "kept": self.keep, "version": self.version}

    def changed(self, name: str, status: Status, detail: str) -> None:
        """A service's state changed: the client being served hears it."""
        if self.current is not None:
            self.current.send(event="change", service=name, status=status.value, detail=detail)

    # -- the socket -----------------------------------------------------------------------

    def listen(self) -> None:
        """Listen on the state directory's control socket (any old one is ours, and stale:
        we hold the stack's lock)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path = self.state.control_path
            path.unlink(missing_ok=True)
            listener.bind(os.fspath(path))
            os.chmod(path, 0o600)
            listener.listen(16)
        except OSError as error:
            listener.close()
            if self.keep:
                raise
            # up --detach works without it; only test runs cannot attach to this stack.
            print(f"no control socket ({error}): test runs will not attach", flush=True)
            return
        self.listener = listener

    def close(self) -> None:
        """Drop every client and the socket."""
        for client in list(self.clients.values()):
            client.sock.close()
        self.clients.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                self.state.control_path.unlink(missing_ok=True)

    def serve(self) -> None:
        """Serve until the supervisor should end: one of test runs once it has had nothing
        to keep for a while, one of ``up --detach`` once a service failed or all completed."""
        while True:
            self._expire()
            if self.keep and self._empty():
                print("nothing left to keep: exiting", flush=True)
                return
            if not self.keep and self.run.wait(0):
                return
            sockets = [client.sock for client in self.clients.values()]
            if self.listener is not None:
                sockets.append(self.listener)
            readable, _, _ = select.select(sockets, [], [], self._pause())
            for sock in readable:
                if sock is self.listener:
                    self._accept()
                    continue
                client = self.clients.get(sock.fileno())
                if client is not None and client.sock is sock:
                    self._receive(client)

    def _pause(self) -> float:
        if self.idle is None:
            return _TICK
        expiry = next_expiry(self._uses(), self.idle)
        return _TICK if expiry is None else max(0.0, min(_TICK, expiry - time.time()))

    def _empty(self) -> bool:
        if len(self.run) or self.clients:
            self.quiet_since = time.monotonic()
            return False
        return time.monotonic() - self.quiet_since >= _EMPTY_GRACE

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError as error:  # out of descriptors, say: the client will retry
            print(f"cannot accept a client: {error}", flush=True)
            return
        _, uid = peer_credentials(sock)
        if uid != os.geteuid():
            sock.close()  # unreachable through a 0700 directory; refused all the same
            return
        sock.settimeout(_SEND_TIMEOUT)
        self.clients[sock.fileno()] = _Client(sock)

    def _receive(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(client)
            return
        client.pending += chunk
        while b"\n" in client.pending:
            line, client.pending = client.pending.split(b"\n", 1)
            self.current = client
            try:
                self._handle(client, json.loads(line))
            except (ValueError, KeyError, TypeError) as error:
                client.send(event="failed", message=f"bad request: {error}", tail=[])
            except Interrupted:
                raise
            except Exception as error:  # one request's trouble must not end what is kept
                print(f"request failed: {error!r}", flush=True)
                client.send(event="failed", message=f"the supervisor failed: {error!r}", tail=[])
            finally:
                self.current = None
        self.recorder.write()

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()
        now = time.time()
        for name in client.holds:
            if name in self.last_use:
                self.last_use[name] = now
        self.recorder.write()

    # -- requests -------------------------------------------------------------------------

    def _handle(self, client: _Client, request: dict[str, Any]) -> None:
        op = request["op"]
        if op == "ensure":
            self._ensure(client, request)
        elif op == "stop":
            self._forget(self.run.remove([request["name"]], dependents=False))
            client.send(event="done")
        elif op == "start":
            self._start(client, [request["name"]], {})
        else:
            client.send(event="failed", message=f"unknown request {op!r}", tail=[])

    def _ensure(self, client: _Client, request: dict[str, Any]) -> None:
        if request["version"] != self.version:
            client.send(event="refused", why=f"this supervisor runs mirakuru {self.version}")
            return
        try:
            spec = parse_stack(request["declaration"], request["source"])
            order = spec.order(request["names"])
        except (StackError, KeyError) as error:
            client.send(event="failed", message=str(error), tail=[])
            return
        if request.get("idle") is not None and self.keep:
            self.idle = float(request["idle"])
        wanted = {name: spec.fingerprint(name, self.version) for name in order}
        verdicts = {name: judge(self._facts(name, wanted[name]), wanted[name]) for name in order}
        running = {name: self.run.spec_of(name).dependencies for name in self.run}
        steps = plan(order, verdicts, running)
        told = {name: verdict.value for name, verdict in verdicts.items()}
        for name in steps.stop:
            if told.get(name, "attach") == "attach":
                told[name] = "dependency"  # healthy, but what it needs is started again
            print(f"{time.strftime('%H:%M:%S')} {name}: stopping ({told[name]})", flush=True)
        self._forget(self.run.remove(steps.stop))
        self.run.spec = spec
        self._start(client, list(request["names"]), {n: told[n] for n in order})

    def _start(self, client: _Client, names: list[str], verdicts: dict[str, str]) -> None:
        for name in self.run.spec.order(names):
            if name not in self.run:
                self.recorder.fresh(name)
        try:
            started = self.run.add(names)
        except StackFailed as failure:
            tail = list(getattr(failure.error, "output_tail", ()) or ())
            timeout = type(failure.error).__name__ == "TimeoutExpired"
            client.send(event="failed", message=str(failure), tail=tail, timeout=timeout)
            return
        order = self.run.spec.order(names)
        strangers = {name: self._owner(name) for name in order}
        strangers = {n: uid for n, uid in strangers.items() if uid not in (None, os.geteuid())}
        if strangers:
            # It switched users (setpriv, su, a daemon that drops privileges): a process of
            # another user is never handed to a test run as ours.
            self._forget(self.run.remove(started))
            name, uid = next(iter(strangers.items()))
            client.send(event="unkept", why=f"{name} runs as uid {uid}, not as us")
            return
        now = time.time()
        for name in started:
            self.fingerprints[name] = self.run.spec.fingerprint(name, self.version)
            self.kept_since[name] = now
        for name in order:
            self.last_use[name] = now
        client.holds = tuple(sorted({*client.holds, *order}))
        services = {name: self._record(name) for name in order}
        client.send(event="ready", services=services, verdicts=verdicts, supervisor=os.getpid())

    def _forget(self, names: tuple[str, ...]) -> None:
        for name in names:
            self.fingerprints.pop(name, None)
            self.last_use.pop(name, None)
            self.kept_since.pop(name, None)

    # -- what is kept ---------------------------------------------------------------------

    def _facts(self, name: str, wanted: str) -> Kept | None:
        """What holds for the kept service ``name`` now; the probe is asked only when the
        definition and the process are still the ones wanted."""
        if name not in self.run or name not in self.fingerprints:
            return None
        fingerprint = self.fingerprints[name]
        status = self.run.status(name)
        if status is Status.COMPLETED:
            return Kept(fingerprint, True, None)
        alive = status in (Status.RUNNING, Status.READY) and self._same_process(name)
        probe = getattr(self.run[name], "ready", None)
        if fingerprint != wanted or not alive or probe is None:
            return Kept(fingerprint, alive, None)
        # A banner or a readiness notification was seen when it started and cannot be
        # asked for again: with the same process still there, it stands.
        passed = attempt(probe, lambda own: min(own or PROBE_AGAIN, PROBE_AGAIN), _seen)
        return Kept(fingerprint, alive, passed)

    def _owner(self, name: str) -> int | None:
        """The user ID of service ``name``'s process (None without one)."""
        process = self.run[name].process
        if process is None or self.run.status(name) not in _ALIVE:
            return None
        try:
            return int(psutil.Process(process.pid).uids().real)
        except psutil.Error:
            return None

    def _same_process(self, name: str) -> bool:
        executor = self.run[name]
        process = executor.process
        if process is None or not executor.running():
            return False
        pinned = identity.of(process)
        if pinned is not None:
            if not pinned.same_process(process.pid):
                return False
            if pinned.group is not None and not pinned.group.holds(process.pid):
                return False
        return self._owner(name) == os.geteuid()

    def _record(self, name: str) -> dict[str, Any]:
        executor = self.run[name]
        status = self.run.status(name)
        process = executor.process
        pid = process.pid if process is not None and status in _ALIVE else None
        pinned = identity.of(process)
        return {
            "status": status.value,
            "pid": pid,
            "started": identity.start_time(pid) if pid is not None else None,
            "cgroup": pinned.group.path if pinned is not None and pinned.group else None,
            "port": self.run.ports.get(name),
            "ports": dict(self.run.ports),
            "command": executor.command,
            "log": os.fspath(self.state.log_path(name)),
            "kept_since": self.kept_since.get(name),
        }

    def _uses(self) -> dict[str, float | None]:
        counts = self.in_use()
        return {name: None if counts.get(name) else when for name, when in self.last_use.items()}

    def _expire(self) -> None:
        if self.idle is None:
            return
        names = expired(self._uses(), self.idle, time.time())
        if names:
            print(f"{time.strftime('%H:%M:%S')} unused for {self.idle:g} s: {', '.join(names)}")
            self._forget(self.run.remove(names))
            self.recorder.write()
            if not len(self.run):
                self.quiet_since = -math.inf  # it kept something, and nobody wants it now


def _seen(_: object) -> bool:
    return True
