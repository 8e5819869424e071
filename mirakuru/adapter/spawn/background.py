"""The cgroup thread, and stopping a fresh child through a pidfd while it waits for it.

A cgroup move can wait out an RCU grace period (~10 ms, more under load): work that must
not hold up ``start()`` runs here, one job at a time, on one daemon thread per process
(made again in a forked child, never inherited).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

from mirakuru.adapter import interrupts
from mirakuru.adapter.spawn import procfs

__all__ = ["PAUSE_WAIT", "aside", "paused", "pidfd_signal", "resume", "submit", "wait_stopped"]

#: How long a paused child waits for Popen's lock (held by someone waiting on it) before
#: it is continued anyway, still to be moved once the lock is free.
PAUSE_WAIT = 0.2


def paused(pid: int) -> int | None:
    """A pidfd of our new child ``pid``, which is now stopped (SIGSTOP); None where
    there are no pidfds (then nothing was sent)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        pidfd: int = opener(pid)
    except OSError:
        return None
    if not pidfd_signal(pidfd, signal.SIGSTOP):
        os.close(pidfd)
        return None
    return pidfd


def pidfd_signal(pidfd: int, sig: int) -> bool:
    """Send ``sig`` through ``pidfd`` (never to a recycled PID); whether it was sent."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError:
        return False
    return True


def resume(pid: int, pidfd: int) -> bool:
    """Continue our child ``pid``, paused by :func:`paused`, unless someone else stopped it
    meanwhile; whether it was continued.

    Their SIGSTOP waits, pending, while ours holds (see :func:`wait_stopped`): a SIGCONT
    would discard it and set running a service its owner froze on purpose.
    """
    if _stop_pending(pid):
        return False
    return pidfd_signal(pidfd, signal.SIGCONT)


def _stop_pending(pid: int) -> bool:
    data = procfs.read(f"/proc/{pid}/status")
    if data is None:
        return False
    bit = 1 << (signal.SIGSTOP - 1)
    for line in data.splitlines():
        if line.startswith((b"SigPnd:", b"ShdPnd:")):
            try:
                if int(line.split(b":", 1)[1], 16) & bit:
                    return True
            except ValueError:
                continue
    return False


def wait_stopped(pidfd: int) -> bool:
    """Block until the child behind ``pidfd`` has stopped (True) or exited (False)."""
    flags = os.WSTOPPED | os.WEXITED | os.WNOWAIT
    try:
        info = os.waitid(os.P_PIDFD, pidfd, flags)
    except ChildProcessError:
        return False  # reaped already
    except OSError:
        return False
    return info is not None and info.si_code == os.CLD_STOPPED


_jobs: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def submit(job: Callable[[], Any]) -> None:
    """Run ``job`` on the one cgroup thread (started on first use), in submission order.

    Never waits for a lock: a finalizer or signal handler (a stop) may call this on a thread
    that is inside it already.
    """
    global _worker  # noqa: PLW0603 - one cgroup thread per process
    worker = _worker
    if worker is None or not worker.is_alive():
        with interrupts.deferred():  # Ctrl-C between acquire() and try would keep the lock
            # Not acquired: whoever holds it is starting the thread, which will find the job.
            if _worker_lock.acquire(blocking=False):
                try:
                    if _worker is None or not _worker.is_alive():
                        worker = threading.Thread(
                            target=_serve, name="mirakuru-cgroup", daemon=True
                        )
                        worker.start()  # raises at interpreter shutdown: nothing was queued
                        _worker = worker
                finally:
                    _worker_lock.release()
    _jobs.put(job)


def aside(job: Callable[[], Any]) -> None:
    """Run ``job`` (from a job of the cgroup thread) on a thread of its own: one that waits
    on someone else's lock must not keep the services queued behind it stopped."""

    def run() -> None:
        with contextlib.suppress(Exception):
            job()

    try:
        threading.Thread(target=run, name="mirakuru-cgroup-wait", daemon=True).start()
    except RuntimeError:  # no new thread at interpreter shutdown: wait here
        run()


def _serve() -> None:
    while True:
        job = _jobs.get()
        with contextlib.suppress(Exception):  # one service's cgroup must not stop the others
            job()


def _forget_after_fork() -> None:
    """In a forked child: the parent's cgroup thread and its queue are not ours."""
    global _jobs, _worker, _worker_lock  # noqa: PLW0603 - one cgroup thread per process
    _jobs = queue.SimpleQueue()
    _worker = None
    _worker_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
