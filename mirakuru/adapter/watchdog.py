"""Services never outlive their owner: a watchdog process kills them if this process dies.

``atexit`` and ``__del__`` cannot run when the Python process that owns executors is
killed with SIGKILL, crashes, or is cut down by a CI timeout. So the first executor to
start also starts a tiny watchdog (``mirakuru/adapter/watchdog_main.py``, in its own
session, standard library only) and tells it, through a pipe, the process group and
ownership token of every service it starts and stops. Only this process holds the pipe's
write end (close-on-exec, and closed in forked children), so when this process dies,
however it dies, the watchdog reads end of file and kills what is still registered,
checking every PID against its token first.

On by default. Opt out with the environment variable ``MIRAKURU_WATCHDOG=0`` (read when
the first executor starts) or by calling :func:`disable`. Nothing is started, and nothing
costs anything, in a process that never starts an executor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading

import attrs

__all__ = ["ENV_SWITCH", "disable", "enabled", "register", "unregister", "watchdog_pid"]

LOG = logging.getLogger("mirakuru")

#: Set to ``0`` (or ``false``, ``no``, ``off``) to run without the watchdog.
ENV_SWITCH = "MIRAKURU_WATCHDOG"
_OFF = frozenset({"0", "false", "no", "off"})
_PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog_main.py")


@attrs.frozen(slots=True)
class _Link:
    """A running watchdog: who started it, the pipe's write end, its PID."""

    owner: int
    fd: int
    pid: int


_lock = threading.Lock()
_link: _Link | None = None
_registered: dict[str, int | None] = {}
_disabled = False


def enabled() -> bool:
    """Whether services started from now on are guarded by the watchdog."""
    return not _disabled and os.environ.get(ENV_SWITCH, "1").strip().lower() not in _OFF


def disable() -> None:
    """Turn the watchdog off for this process; services then rely on stop/kill and atexit.

    A running watchdog is told to exit without killing anything.
    """
    global _disabled, _link  # noqa: PLW0603 - one watchdog per process
    with _lock:
        _disabled = True
        _registered.clear()
        link, _link = _link, None
    if link is not None and link.owner == os.getpid():
        with contextlib.suppress(OSError):
            os.write(link.fd, b"q\n")
        _close(link)


def register(token: str, pgid: int | None) -> None:
    """Guard a freshly started service: its ownership token and (if it leads one) group."""
    if not enabled() or not _usable(token):
        return
    with _lock:
        _registered[token] = pgid
        _send(f"+ {token} {pgid if pgid is not None else '-'}\n")


def unregister(token: str) -> None:
    """The service with ``token`` is gone: nothing of it is left to kill."""
    with _lock:
        if _registered.pop(token, False) is False:
            return
        link = _link
        if link is not None and link.owner == os.getpid():
            _send(f"- {token}\n")


def watchdog_pid() -> int | None:
    """The PID of this process's watchdog, if one runs."""
    link = _link
    return link.pid if link is not None and link.owner == os.getpid() else None


def _usable(token: str) -> bool:
    return bool(token) and not any(character.isspace() for character in token)


def _replay() -> str:
    """Every current registration, as commands for a fresh watchdog."""
    return "".join(f"+ {t} {g if g is not None else '-'}\n" for t, g in _registered.items())


def _send(line: str) -> None:
    """Write one command (lock held); start or restart the watchdog when needed."""
    global _link  # noqa: PLW0603 - one watchdog per process
    link = _link
    if link is None or link.owner != os.getpid():
        if not line.startswith("+"):
            return
        link = _link = _spawn()
        if link is None:
            return
        line = _replay()
    try:
        os.write(link.fd, line.encode())
    except OSError:
        # The watchdog died (someone killed it): start a new one and tell it everything.
        _close(link)
        _link = _spawn()
        if _link is not None:
            with contextlib.suppress(OSError):
                os.write(_link.fd, _replay().encode())


def _spawn() -> _Link | None:
    """Start the watchdog without waiting for it: its commands queue in the pipe."""
    if not sys.executable or not os.path.isfile(_PROGRAM):
        LOG.debug("no watchdog: cannot find the interpreter or %s", _PROGRAM)
        return None
    read_end, write_end = os.pipe()  # both close-on-exec: services never inherit them
    argv = [sys.executable, "-I", "-S", _PROGRAM]
    actions = [
        (os.POSIX_SPAWN_DUP2, read_end, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    try:
        try:
            pid = os.posix_spawn(
                sys.executable, argv, os.environ, file_actions=actions, setsid=True
            )
        except NotImplementedError:
            pid = os.posix_spawn(
                sys.executable, argv, os.environ, file_actions=actions, setpgroup=0
            )
    except OSError as error:
        LOG.debug("no watchdog: %s", error)
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return _Link(os.getpid(), write_end, pid)


def _close(link: _Link) -> None:
    """Close our end of the pipe and reap the watchdog if it exits promptly."""
    with contextlib.suppress(OSError):
        os.close(link.fd)
    opener = getattr(os, "pidfd_open", None)
    try:
        if opener is not None:
            fd = opener(link.pid)
            try:
                select.select([fd], [], [], 1.0)
            finally:
                os.close(fd)
        os.waitpid(link.pid, os.WNOHANG)
    except OSError:
        return


def _forget_after_fork() -> None:
    """In a forked child: the parent's watchdog is not ours, and its pipe must close here."""
    global _lock, _link  # noqa: PLW0603 - one watchdog per process
    _lock = threading.Lock()
    link, _link = _link, None
    _registered.clear()
    if link is not None:
        with contextlib.suppress(OSError):
            os.close(link.fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
