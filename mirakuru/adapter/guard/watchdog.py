"""Services never outlive their owner: a watchdog process kills them if this process dies.

``atexit`` and ``__del__`` cannot run when the Python process that owns executors is
killed with SIGKILL, crashes, or is cut down by a CI timeout. So the first executor to
start also starts a tiny watchdog (``mirakuru/adapter/guard/watchdog_main.py``, in its own
session, standard library only) and tells it, over a unix socket pair, every service it
starts and stops: the ownership token, the process group, the cgroup, and a pidfd of the
leader passed with ``SCM_RIGHTS`` (so the watchdog holds the process itself, not a PID that
could be recycled). Only this process holds its end of the socket (close-on-exec, closed in
forked children), so when this process dies, however it dies, the watchdog reads end of file
and kills what is still registered.

The watchdog is a helper and never takes the owner down: sends are non-blocking and use
``MSG_NOSIGNAL`` (no SIGPIPE even under ``SIG_DFL``); a watchdog found dead, stopped or
unable to keep up is logged once, killed if needed (it is our own child) and replaced by a
fresh one that is told every current registration.

On by default. Opt out with the environment variable ``MIRAKURU_WATCHDOG=0`` (read when
the first executor starts) or by calling :func:`disable`. Nothing is started, and nothing
costs anything, in a process that never starts an executor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable

import attrs

from mirakuru.adapter import interrupts
from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import identity, procfs

__all__ = ["ENV_SWITCH", "disable", "enabled", "register", "unregister", "watchdog_pid"]

LOG = logging.getLogger("mirakuru")

#: Set to ``0`` (or ``false``, ``no``, ``off``) to run without the watchdog.
ENV_SWITCH = "MIRAKURU_WATCHDOG"
_OFF = frozenset({"0", "false", "no", "off"})
_PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog_main.py")


@attrs.frozen(slots=True)
class _Link:
    """A running watchdog: who started it, our end of the socket, its PID and pidfd."""

    owner: int
    sock: socket.socket
    pid: int
    pidfd: int | None


@attrs.frozen(slots=True)
class _Service:
    """What the watchdog is told about one service."""

    pgid: int | None
    cgroup: str | None
    leader: int | None
    started: float | None


# Commands run one at a time, in order, by whichever thread holds the lock; a caller that
# finds it taken queues its command for the holder instead of waiting. A finalizer or a
# signal handler that stops an executor (unregister) may run on a thread that is inside
# register() already: waiting there for the lock would wait for itself, for ever.
_lock = threading.Lock()
_commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_link: _Link | None = None
_registered: dict[str, _Service] = {}
_disabled = False
_complained = False
#: Each command is one datagram; a watchdog that lets this many bytes queue is stuck.
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0) | getattr(socket, "MSG_DONTWAIT", 0)


def enabled() -> bool:
    """Whether services started from now on are guarded by the watchdog."""
    return not _disabled and os.environ.get(ENV_SWITCH, "1").strip().lower() not in _OFF


def disable() -> None:
    """Turn the watchdog off for this process; services then rely on stop/kill and atexit.

    A running watchdog is told to exit without killing anything.
    """
    global _disabled  # noqa: PLW0603 - one watchdog per process
    _disabled = True

    def command() -> None:
        global _link
        _registered.clear()
        link, _link = _link, None
        if link is not None and link.owner == os.getpid():
            with contextlib.suppress(OSError):
                link.sock.send(b"q", _SEND_FLAGS)
            _close(link, wait=1.0)

    _run(command)


def register(
    token: str,
    pgid: int | None,
    cgroup: str | None = None,
    pidfd: int | None = None,
    started: float | None = None,
) -> None:
    """Guard a freshly started service: its token, group, cgroup and a pidfd of its leader.

    The watchdog gets its own copy of ``pidfd`` (the caller keeps and closes theirs); we
    keep no descriptor, only the leader's PID and ``started`` time, so that a replacement
    watchdog gets a fresh pidfd only for a leader that is verifiably the same process.
    """
    if not enabled() or not _usable(token) or (cgroup is not None and not _usable(cgroup)):
        return
    leader = _pid_of(pidfd) if pidfd is not None else None
    service = _Service(pgid, cgroup, leader, started)
    # Our own copy: the command may run after the caller has closed theirs.
    own = _duplicate(pidfd)

    def command() -> None:
        try:
            _registered[token] = service
            _deliver(_plus(token, service), own)
        finally:
            _close_fd(own)

    _run(command)


def unregister(token: str) -> None:
    """The service with ``token`` is gone: nothing of it is left to kill."""

    def command() -> None:
        if _registered.pop(token, None) is None:
            return
        link = _link
        if link is not None and link.owner == os.getpid():
            _deliver(f"- {token}".encode(), None)

    _run(command)


def _run(command: Callable[[], None]) -> None:
    """Run ``command`` under the lock now, or have the lock's holder run it: never wait."""
    _commands.put(command)
    while not _commands.empty():
        # Ctrl-C held off: a command cut in two would confuse the watchdog, and one between
        # acquire() and the try would keep the lock (and every later command) for good.
        with interrupts.deferred():
            if not _lock.acquire(blocking=False):
                return  # the holder runs what is queued before it lets go (see below)
            try:
                _run_queued()
            finally:
                _lock.release()
        # A command queued between our last look and the release: its caller found the
        # lock taken and left it to us, so look again.


def _run_queued() -> None:
    while True:
        try:
            command = _commands.get_nowait()
        except queue.Empty:
            return
        try:
            command()
        except Exception:  # one failed command must not stop the others
            LOG.debug("mirakuru watchdog command failed", exc_info=True)


def _duplicate(fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        return os.dup(fd)
    except OSError:
        return None


def release_at_exit() -> None:
    """At interpreter exit, once the services are stopped: close our end of the link.

    The watchdog then sees its socket end, as it would a moment later when this process is
    gone, and exits; closing it here keeps the socket from being reported as leaked.
    """
    global _link
    if not _lock.acquire(timeout=1.0):
        return  # a thread stuck mid-send holds it: the kernel closes the socket at exit
    try:
        link, _link = _link, None
    finally:
        _lock.release()
    if link is not None and link.owner == os.getpid():
        _close(link, wait=0.0)


def watchdog_pid() -> int | None:
    """The PID of this process's watchdog, if one runs."""
    link = _link
    return link.pid if link is not None and link.owner == os.getpid() else None


def _usable(token: str) -> bool:
    # One split in C rather than a Python test per character: it runs on every start.
    return bool(token) and token.split() == [token]


def _plus(token: str, service: _Service) -> bytes:
    group = service.pgid if service.pgid is not None else "-"
    return f"+ {token} {group} {service.cgroup or '-'}".encode()


def _complain(why: str) -> None:
    global _complained  # noqa: PLW0603 - logged once per process
    if not _complained:
        _complained = True
        LOG.warning("mirakuru watchdog %s: starting a new one", why)


def _deliver(message: bytes, pidfd: int | None) -> None:
    """Send one command (lock held, never blocking); replace a dead or stuck watchdog."""
    global _link  # noqa: PLW0603 - one watchdog per process
    link = _link
    if link is None or link.owner != os.getpid():
        if not message.startswith(b"+"):
            return
        _link = _fresh()
        return
    problem = _stuck(link)
    if problem is None:
        try:
            _transmit(link.sock, message, pidfd)
            return
        except BlockingIOError:
            problem = "cannot keep up"
        except OSError:
            problem = "is gone"
    _complain(problem)
    _close(link, wait=0.0, kill=True)
    _link = _fresh()


def _transmit(sock: socket.socket, message: bytes, pidfd: int | None) -> None:
    if pidfd is None:
        sock.send(message, _SEND_FLAGS)
    else:
        socket.send_fds(sock, [message], [pidfd], _SEND_FLAGS)


def _stuck(link: _Link) -> str | None:
    """Why the watchdog cannot serve us (dead, stopped), or None when it can."""
    state = _state(link.pid)
    if state is None or state in "ZX":
        return "is gone"
    if state in "Tt":
        return "is stopped"
    return None


def _state(pid: int) -> str | None:
    """The one-letter scheduler state of our child ``pid``; None if it is gone."""
    if capabilities().proc_fs:
        fields = procfs.stat_fields(pid)
        return fields[0][:1].decode() if fields else None
    import psutil  # the portable path only

    try:
        status = psutil.Process(pid).status()
    except psutil.Error:
        return None
    if status == psutil.STATUS_ZOMBIE:
        return "Z"
    return "T" if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP) else "S"


def _fresh() -> _Link | None:
    """Start a watchdog and tell it every current registration."""
    link = _spawn()
    if link is None:
        return None
    try:
        for token, service in _registered.items():
            fd = _reopen(service)
            try:
                _transmit(link.sock, _plus(token, service), fd)
            finally:
                _close_fd(fd)
    except OSError as error:
        LOG.debug("new watchdog refused its registrations: %s", error)
        _close(link, wait=0.0, kill=True)
        return None
    return link


def _pid_of(pidfd: int) -> int | None:
    """The PID a pidfd refers to (from its fdinfo), or None where that cannot be read."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pid:"):
                    value = int(line.split()[1])
                    return value if value > 0 else None
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reopen(service: _Service) -> int | None:
    """A new pidfd for the service's leader, only if it is still the process we spawned."""
    if service.leader is None or service.started is None:
        return None
    opener = getattr(os, "pidfd_open", None) if capabilities().pidfd else None
    if opener is None:
        return None
    try:
        fd: int = opener(service.leader)
    except OSError:
        return None
    # Pinned first, then checked: a recycled PID has another start time.
    if identity.start_time(service.leader) != service.started:
        os.close(fd)
        return None
    return fd


def _spawn() -> _Link | None:
    """Start the watchdog without waiting for it: its commands queue in the socket."""
    if not sys.executable or not os.path.isfile(_PROGRAM):
        LOG.debug("no watchdog: cannot find the interpreter or %s", _PROGRAM)
        return None
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as error:
        LOG.debug("no watchdog: %s", error)
        return None
    argv = [sys.executable, "-I", "-S", _PROGRAM]
    actions = [
        (os.POSIX_SPAWN_DUP2, theirs.fileno(), 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    env = dict(os.environ)
    env["MIRAKURU_WATCHDOG_PROC"] = "1" if capabilities().proc_fs else "0"
    try:
        try:
            pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
        except NotImplementedError:
            pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions, setpgroup=0)
    except OSError as error:
        LOG.debug("no watchdog: %s", error)
        ours.close()
        return None
    finally:
        theirs.close()
    pidfd = None
    opener = getattr(os, "pidfd_open", None) if capabilities().pidfd else None
    if opener is not None:
        with contextlib.suppress(OSError):
            pidfd = opener(pid)
    return _Link(os.getpid(), ours, pid, pidfd)


def _close(link: _Link, wait: float, kill: bool = False) -> None:
    """Close our end; kill the watchdog if asked (it is our unreaped child) and reap it."""
    with contextlib.suppress(OSError):
        link.sock.close()
    try:
        if kill:
            if link.pidfd is not None:
                signal.pidfd_send_signal(link.pidfd, signal.SIGKILL)
            else:
                os.kill(link.pid, signal.SIGKILL)
            wait = max(wait, 1.0)
        if link.pidfd is not None and wait > 0:
            select.select([link.pidfd], [], [], wait)
        os.waitpid(link.pid, os.WNOHANG)
    except OSError:
        pass
    finally:
        _close_fd(link.pidfd)


def _close_fd(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _forget_after_fork() -> None:
    """In a forked child: the parent's watchdog is not ours, and its socket must close here."""
    global _lock, _commands, _link  # noqa: PLW0603 - one watchdog per process
    _lock = threading.Lock()
    _commands = queue.SimpleQueue()
    link, _link = _link, None
    _registered.clear()
    if link is not None:
        with contextlib.suppress(OSError):
            link.sock.close()
        _close_fd(link.pidfd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
