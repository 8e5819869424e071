"""One attempt at each kind of probe, bounded by the time it is given.

Event-driven probes (a banner, sd_notify) are not evaluated here: their state lives in the
output pump and the notify socket, and :func:`attempt` reads it through ``events``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.readiness import names, sockdiag
from mirakuru.adapter.readiness.deadline import DeadlineSocket, deadline_tls, left
from mirakuru.adapter.readiness.findings import ANSWER, Findings, Note
from mirakuru.adapter.readiness.findings import connect_failure as _connect_failure
from mirakuru.adapter.readiness.findings import quiet as _quiet
from mirakuru.core.budget import Budget
from mirakuru.core.probes import (
    AllOf,
    AnyOf,
    Banner,
    Http,
    Leaf,
    PidFile,
    Probe,
    SdNotify,
    Tcp,
    UnixSocket,
    is_external,
)

__all__ = [
    "ATTEMPT_CEILING",
    "CONNECT_ANYWAY",
    "attempt",
    "http_ready",
    "is_external",
    "pid_file_ready",
    "refusal",
    "settled",
    "tcp_ready",
    "unix_ready",
    "within",
]

#: The longest single attempt (a connect, a request) when nothing else bounds it.
ATTEMPT_CEILING = 60.0

#: How long a connection may wait in the accept queue of a program that never accepts
#: before it counts as ready anyway (what a never-accepting server pays, once).
ACCEPT_WAIT = 0.25
#: Without sock_diag: how long a completed connect is watched for the reset that a
#: listener's exit sends, before it counts as ready.
PORTABLE_CONFIRM = 0.05

#: Given an attempt's own time limit (or None), the time it may take.
Limit = Callable[[float | None], float]
#: How an executor answers for the probes whose state it keeps itself.
EventState = Callable[[Banner | SdNotify], bool]


def within(budget: Budget, clock: Callable[[], float] = monotonic) -> Limit:
    """The time one attempt may take under ``budget``: its own limit (if any), clamped to
    what remains, and never unbounded."""

    def limit(attempt_timeout: float | None) -> float:
        return min(budget.clamp(attempt_timeout, clock()), ATTEMPT_CEILING)

    return limit


def _never(_: Banner | SdNotify) -> bool:
    return False


#: While the kernel's socket table says nobody listens on a loopback port, still connect
#: this often: a NAT rule that forwards the port elsewhere is invisible in the table, and
#: such a service is then seen as promptly as the published 0.1 s polling sees it.
CONNECT_ANYWAY = 0.1


class _Target:
    """A polled TCP host and port, resolved once, with what each attempt needs prepared."""

    __slots__ = ("addresses", "connected_at", "questions")

    def __init__(self, host: str, port: int, addresses: names.Answer) -> None:
        self.addresses = addresses
        hosts = [(family, str(address[0])) for family, _, _, _, address in self.addresses]
        questions = [
            sockdiag.listener_question(family, host, port) if _is_loopback(family, host) else None
            for family, host in hosts
        ]
        #: The kernel's questions, one per address: only when every address can be asked.
        self.questions = tuple(q for q in questions if q is not None)
        if len(self.questions) != len(questions):
            self.questions = ()
        self.connected_at = -math.inf

    def surely_refused(self) -> bool:
        """True when the kernel says nobody listens on any of the addresses, and a real
        connect was made less than :data:`CONNECT_ANYWAY` ago."""
        questions = self.questions
        if not questions:
            return False
        for question in questions:
            if sockdiag.listening_now(question) is not False:
                return False
        return monotonic() - self.connected_at < CONNECT_ANYWAY


def _is_loopback(family: int, host: str) -> bool:
    # Only loopback: a SYN to it is surely answered from this namespace's socket table,
    # while another address may belong to a remote host the table knows nothing of.
    if family == socket.AF_INET:
        return host.startswith("127.")
    return family == socket.AF_INET6 and (host == "::1" or host.startswith("::ffff:127."))


_targets: dict[tuple[str, int], _Target] = {}


def _target(host: str, port: int, timeout: float = 0.0) -> _Target:
    """The target, resolved once for the process; an ``OSError`` while the name does not
    resolve or its lookup takes longer than ``timeout`` (see :mod:`names`)."""
    # Polling asks hundreds of times a second: a dict lookup, and a name lookup only once.
    target = _targets.get((host, port))
    if target is None:
        target = _Target(host, port, names.resolve(host, port, timeout))
        if len(_targets) >= 256:
            _targets.clear()  # more targets than any run polls: start over
        _targets[(host, port)] = target
    return target


def _surely_refused(host: str, port: int) -> bool:
    """Whether a connect to ``host``:``port`` can be skipped this time (see _Target)."""
    try:
        return _target(host, port).surely_refused()
    except OSError:
        return False  # not resolved yet: the attempt waits for the lookup, as it may


def refusal(probe: Probe) -> Callable[[], bool] | None:
    """A cheap stand-in for most polled attempts at ``probe``, or None if it has none.

    The callable returns True when an attempt would surely fail right now (the kernel sees
    no listener on the loopback ports it needs, and no real connect is due), without
    connecting; False means "make the attempt". A waiter can call it on a wake-up that no
    event caused and skip the whole check when it says True: it costs one netlink question
    (~30 us) instead of an executor's check (~80 us).
    """
    if isinstance(probe, AllOf | AnyOf):
        gates = [refusal(inner) for inner in probe.probes]
        known = [gate for gate in gates if gate is not None]
        if isinstance(probe, AllOf):
            # One refused member fails them all.
            return (lambda: any(gate() for gate in known)) if known else None
        if len(known) != len(gates):
            return None  # a member without a gate (a banner, say) may pass on its own
        return lambda: all(gate() for gate in known)
    if isinstance(probe, Tcp):
        host, port = probe.host, probe.port
    elif isinstance(probe, Http):
        host, port, _ = _endpoint(probe.url)
    else:
        return None
    try:
        target = _target(host, port)
    except OSError:  # a name still being looked up: the gate works once it resolves
        return lambda: _surely_refused(host, port)
    return target.surely_refused if target.questions else None


def _connect(host: str, port: int, timeout: float, note: Note = _quiet) -> socket.socket | None:
    """A connected TCP socket to the first address that accepts, or None (and ``note``
    is told why)."""
    try:
        target = _target(host, port, timeout)
    except OSError as error:
        note(f"cannot resolve {host!r}: {error.strerror or error}")
        return None
    target.connected_at = monotonic()
    code = errno.ECONNREFUSED
    for family, kind, proto, _, address in target.addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(max(timeout, 0.001))
        # connect_ex: a refused connect is the common case while polling, and an error
        # code is much cheaper than raising and catching an exception every few ms.
        code = sock.connect_ex(address)
        if code == 0:
            return sock
        sock.close()
    note(_connect_failure(code))
    return None


def tcp_ready(probe: Tcp, timeout: float, note: Note = _quiet) -> bool:
    """Whether the program listening on the probe's host and port accepts our connection.

    A completed connect is not enough: it may sit in the accept queue of a program that is
    about to exit (see :func:`settled`).
    """
    sock = _connect(probe.host, probe.port, timeout, note)
    if sock is None:
        return False
    try:
        return _accepted(settled(sock, timeout), note)
    finally:
        sock.close()


def _accepted(accepted: bool, note: Note) -> bool:
    note("accepted" if accepted else "connected, then reset (the listener closed)")
    return accepted


def _peer_end(sock: socket.socket) -> str | None:
    """What our socket says of the other end right now: "reset", "open" or None (no news)."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return "reset"
    # Data or an orderly close (b""): a program accepted the connection, so it was running.
    del data
    return "open"


def settled(sock: socket.socket, timeout: float) -> bool:
    """Wait (bounded) until the program behind a connected ``sock`` accepts it.

    True once the server's end is accepted, or after :data:`ACCEPT_WAIT` for a program that
    never accepts (it may serve a queue it reads later); False when the listener closes with
    our connection still queued: the kernel resets it, as when the program exits.
    """
    began = monotonic()
    # Non-blocking: a socket with a timeout would wait for data before every peek.
    sock.setblocking(False)
    diag = sockdiag.sees(sock.family)
    window = min(timeout, ACCEPT_WAIT if diag else PORTABLE_CONFIRM)
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    delay = 0.0002
    while True:
        end = _peer_end(sock)
        if end is not None:
            return end == "open"
        if diag:
            state = sockdiag.peer_state(sock)
            if state != "queued":
                # Accepted, or invisible to us (another network namespace): a reset that
                # raced the lookup still says no.
                return _peer_end(sock) != "reset"
        left = window - (monotonic() - began)
        if left <= 0:
            return True
        # A reset or the first byte wakes us at once; the lookup repeats on a short backoff.
        poller.poll(min(delay, left) * 1000)
        delay = min(delay * 2, 0.005)


def unix_ready(probe: UnixSocket, timeout: float, note: Note = _quiet) -> bool:
    """Whether the program listening on the unix socket accepts our stream connection
    (queued is not enough, as for TCP: see :func:`settled`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(timeout, 0.001))
        try:
            sock.connect(probe.path)
        except FileNotFoundError:
            note("does not exist")
            return False
        except OSError as error:
            note(_connect_failure(error.errno) if error.errno else str(error))
            return False
        return _accepted(settled(sock, timeout), note)


def pid_file_ready(probe: PidFile, note: Note = _quiet) -> bool:
    """Whether the pid file exists (and is a file)."""
    if os.path.isfile(probe.path):
        return True
    note("is not a file" if os.path.lexists(probe.path) else "does not exist")
    return False


def _unverified_context() -> ssl.SSLContext:
    import ssl

    # A readiness probe only asks "does the server answer?" and sends nothing secret, and
    # local test servers mostly use self-signed certificates; pass ssl_context= to verify.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=256)
def _endpoint(url: str) -> tuple[str, int, bool]:
    # Parsed once per URL, not on every attempt: polling a refused port every few ms made
    # urllib's host and port parsing a visible part of each wake-up.
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure


def http_ready(probe: Http, timeout: float, note: Note = _quiet) -> bool:
    """Whether one request answers with a matching status, within ``timeout``."""
    host, port, secure = _endpoint(probe.url)
    limit = max(timeout, 0.001)
    deadline = monotonic() + limit  # one for the whole attempt: connect, handshake, reads
    # Connect first: while nothing listens, an attempt costs one refused connect rather
    # than an HTTP client's worth of work, so polling stays cheap and can stay fast.
    sock = _connect(host, port, limit, note)
    if sock is None:
        return False
    # Imported here: http.client (and ssl) cost ~20 ms to import, and most users never
    # probe HTTP; the first attempt that connects pays it once.
    import http.client
    import urllib.parse

    parts = probe.parts
    connection: http.client.HTTPConnection
    if secure:
        context = probe.ssl_context or _unverified_context()
        connection = http.client.HTTPSConnection(host, port, timeout=limit, context=context)
        try:
            sock.settimeout(left(deadline))  # the handshake's reads share the deadline too
            tls = context.wrap_socket(sock, server_hostname=host)
        except (OSError, ValueError) as error:
            note(f"TLS handshake failed: {error}")
            sock.close()
            return False
        connection.sock = deadline_tls(tls, deadline)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=limit)
        connection.sock = DeadlineSocket.adopt(sock, deadline)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    body = urllib.parse.urlencode(probe.payload) if probe.payload is not None else None
    headers = dict(probe.headers)
    if body is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    try:
        connection.request(probe.method, target, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as error:
        note(f"no HTTP answer ({type(error).__name__}: {error})")
        return False
    finally:
        with contextlib.suppress(OSError):
            connection.close()
    note(f"{ANSWER}{status}")
    return probe.status.match(str(status)) is not None


def attempt(
    probe: Probe,
    limit: Limit,
    events: EventState = _never,
    findings: Findings | None = None,
) -> bool:
    """One attempt at ``probe``: combinators short-circuit in order.

    ``limit(attempt_timeout)`` gives the time one leaf may take (the per-attempt limit
    clamped to what remains of the budget); ``events`` answers for event-driven leaves;
    ``findings``, if given, records what each polled leaf's attempt found.
    """
    if isinstance(probe, AllOf):
        return all(attempt(inner, limit, events, findings) for inner in probe.probes)
    if isinstance(probe, AnyOf):
        return any(attempt(inner, limit, events, findings) for inner in probe.probes)
    if findings is None or isinstance(probe, Banner | SdNotify):
        return _leaf_ready(probe, limit, events)
    return findings.attempt(probe, lambda note: _leaf_ready(probe, limit, events, note))


def _leaf_ready(probe: Leaf, limit: Limit, events: EventState, note: Note = _quiet) -> bool:
    # Polled kinds first, and a refusal the kernel vouches for before anything else: most
    # attempts end there, every few ms, so each step they skip is CPU saved.
    if isinstance(probe, Tcp):
        return not _surely_refused(probe.host, probe.port) and tcp_ready(probe, limit(None), note)
    if isinstance(probe, Http):
        host, port, _ = _endpoint(probe.url)
        return not _surely_refused(host, port) and http_ready(
            probe, limit(probe.request_timeout), note
        )
    if isinstance(probe, Banner | SdNotify):
        return events(probe)
    if isinstance(probe, UnixSocket):
        return unix_ready(probe, limit(None), note)
    return pid_file_ready(probe, note)
