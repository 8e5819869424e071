"""One cgroup v2 per started service, so that nothing it forks can leave our reach.

A process cannot move itself out of a cgroup it has no write access to, whatever it does
with its session, process group or environment; so a double-forking, ``setsid()``-ing daemon
that wipes its environment is still listed in ``cgroup.procs`` and is killed by writing to
``cgroup.kill`` (the same mechanism as systemd's ``KillMode=control-group``). Available where a
writable cgroup v2 hierarchy is mounted (as root, or with a delegated subtree); elsewhere
:func:`available` is False and teardown relies on process groups, start times and markers.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mirakuru.adapter.spawn import background, procfs
from mirakuru.adapter.spawn.procfs import forks_so_far

__all__ = ["ENV_SWITCH", "Cgroup", "available", "base", "create", "warm_up"]

#: Set to ``0`` (or ``false``, ``no``, ``off``) to give services no cgroup of their own.
ENV_SWITCH = "MIRAKURU_CGROUP"
_PREFIX = "mirakuru-"


def _read(path: str) -> str | None:
    data = procfs.read(path)
    return None if data is None else data.decode(errors="replace")


def _write(path: str, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, text.encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _signal(pid: int, sig: int) -> bool:
    """Signal our own unreaped child (its PID cannot be recycled); whether it was sent."""
    try:
        os.kill(pid, sig)
    except OSError:  # gone, or not ours to signal any more (it ran a setuid program)
        return False
    return True


def _mount_point() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` or the hybrid path)."""
    table = _read("/proc/self/mountinfo")
    if table is None:
        return None
    for line in table.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return left.split(" ")[4]
    return None


def _own_path() -> str | None:
    """This process's cgroup v2 path, relative to the mount point."""
    table = _read("/proc/self/cgroup")
    if table is None:
        return None
    for line in table.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None


@functools.cache
def base() -> str | None:
    """The writable cgroup v2 directory new service cgroups are created in, or None."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not os.path.isdir("/proc/self"):
        return None
    mount, own = _mount_point(), _own_path()
    if mount is None or own is None:
        return None
    parent = os.path.normpath(os.path.join(mount, own.lstrip("/")))
    probe = os.path.join(parent, f"{_PREFIX}probe-{os.getpid()}-{threading.get_ident()}")
    try:
        os.mkdir(probe)
    except OSError:
        return None
    try:
        usable = os.path.exists(os.path.join(probe, "cgroup.kill")) and os.access(
            os.path.join(probe, "cgroup.procs"), os.W_OK
        )
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)
    if usable:
        _remove_stale(parent)
    return parent if usable else None


def _remove_stale(parent: str) -> None:
    """Delete empty cgroups left by owners that died with no watchdog to tidy up (rmdir only)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        owner, colon, _ = name[len(_PREFIX) :].partition(":")
        if not (name.startswith(_PREFIX) and colon and owner.isdigit()):
            continue
        if os.path.exists(f"/proc/{owner}"):
            continue  # its owner may still use it (a recycled owner PID only delays this)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(parent, name))  # fails unless empty: never touches a process


def _leaf(path: str) -> bool:
    """Whether the cgroup has no cgroups below it (whose members ``cgroup.procs`` omits)."""
    text = _read(os.path.join(path, "cgroup.stat"))
    return text is not None and "nr_descendants 0\n" in text


def available() -> bool:
    """Whether services can be given a cgroup of their own here."""
    return base() is not None


#: How long a deferred adoption waits for a reaper holding Popen's lock before giving up.
_GUARD_WAIT = 10.0
#: How long start() waits for the cgroup thread to begin a move (a thread switch, normally).
_HANDOFF_WAIT = 0.1
_LOCK_TYPE = _thread.LockType


class Cgroup:
    """A cgroup we created for one service: membership of it is proof of ownership."""

    __slots__ = ("_sealed", "_settled", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._settled: threading.Event | None = None
        self._sealed = False

    def adopt(self, pid: int, forks_before: int | None = None) -> bool:
        """Move ``pid`` (our own unreaped child) into this cgroup."""
        moved = _write(os.path.join(self.path, "cgroup.procs"), f"{pid}\n")
        self._seal(moved, forks_before)
        return moved

    def _seal(self, moved: bool, forks_before: int | None) -> None:
        # A fork still in progress holds off the move until it is done, so the counter read
        # after the move includes every task born outside: one (the leader) means none was.
        if not moved or forks_before is None:
            self._sealed = False
            return
        self._sealed = forks_so_far() == forks_before + 1

    def sealed(self) -> bool:
        """Whether the whole tree is in here: the leader moved before any task was created.

        Then everything the service forks is born a member, and ``cgroup.procs`` lists the
        whole tree (unless a privileged process moved itself out: see :mod:`teardown`).
        False while the move is pending, and wherever it landed late.
        """
        settled = self._settled
        if settled is not None and not settled.is_set():
            return False
        return self._sealed and _leaf(self.path)

    def adopt_child(
        self, process: Any, forks_before: int | None = None, *, later: bool = False
    ) -> None:
        """Move ``process`` (a Popen we just created) in now, holding Popen's reaping lock.

        The lock keeps the child from being reaped, and its PID recycled, until the move has
        landed. Unless :func:`warm_up` ended just now, the child is stopped (SIGSTOP, then
        SIGCONT) for as long as the move takes: on a loaded machine the hierarchy can go
        cold again between the two, and a move that waits out a grace period would leave
        a running child time to fork, ``setsid()`` and wipe its environment outside the
        cgroup. Held by someone else (a poll() on another thread), the move goes to the
        cgroup thread instead (:meth:`adopt_soon`), rather than wait here.

        ``later``: the caller does not wait for the child, so it need not wait for a cold
        move's grace period either (~10 ms after an idle spell). The child is stopped
        (through a pidfd: no recycled PID is ever hit; this waits only until the stop has
        landed) and the cgroup thread moves it and continues it, unless someone else
        stopped it meanwhile: nothing it forks is born outside, and the caller goes on.
        """
        guard = getattr(process, "_waitpid_lock", None)
        if not isinstance(guard, _LOCK_TYPE):
            self.adopt(process.pid, forks_before)
            return
        reaped: Callable[[], bool] = lambda: process.returncode is not None  # noqa: E731
        pidfd = background.paused(process.pid) if later else None
        if pidfd is not None:
            # Waited for here (tens of microseconds): a SIGSTOP the caller sends once this
            # returns then finds the child stopped already, stays pending, and is kept
            # (background.resume); one sent while ours was still pending would merge with
            # it and be undone. Then every task created before is counted, even one whose
            # fork was under way when the stop came.
            stopped = background.wait_stopped(pidfd)
            counted = forks_so_far()
            clean = stopped and forks_before is not None and counted == forks_before + 1
            self._adopt_later(self._adopt_paused(process.pid, pidfd, guard, reaped, clean))
            return
        if not guard.acquire(blocking=False):
            self.adopt_soon(process.pid, guard, reaped, forks_before)
            return
        try:
            if process.returncode is None:
                late = time.monotonic() - _warmed_at > _WARM_FOR
                paused = late and _signal(process.pid, signal.SIGSTOP)
                try:
                    self.adopt(process.pid, forks_before)
                finally:
                    if paused:
                        _signal(process.pid, signal.SIGCONT)
        finally:
            guard.release()

    def _adopt_later(self, job: Callable[[threading.Event], None]) -> None:
        settled = self._settled = threading.Event()
        try:
            background.submit(lambda: job(settled))
        except RuntimeError:  # no new thread at interpreter shutdown: move it here
            job(settled)

    def _adopt_paused(
        self,
        pid: int,
        pidfd: int,
        guard: Any,
        reaped: Callable[[], bool],
        clean: bool,
    ) -> Callable[[threading.Event], None]:
        """The cgroup thread's job for a child stopped since before it created any task
        (``clean``), or not (then its move cannot seal the cgroup)."""

        def job(settled: threading.Event) -> None:
            if guard.acquire(blocking=False):
                move(settled, held=True)
            else:
                # Someone waits on the child holding Popen's lock (poll() on another
                # thread, or wait(), for as long as the child lives): up to _GUARD_WAIT.
                background.aside(lambda: move(settled, held=False))

        def move(settled: threading.Event, held: bool) -> None:
            paused = True
            try:
                began = time.monotonic()
                while not held and not guard.acquire(timeout=0.05):
                    waited = time.monotonic() - began
                    if reaped() or waited > _GUARD_WAIT:
                        return
                    if paused and waited > background.PAUSE_WAIT:
                        # Someone waits on it holding Popen's lock: let it run meanwhile.
                        background.resume(pid, pidfd)
                        paused = False
                try:
                    if reaped():
                        return
                    moved = _write(os.path.join(self.path, "cgroup.procs"), f"{pid}\n")
                finally:
                    guard.release()
                # Sealed only if it stayed stopped until it was in, having created no task.
                self._sealed = moved and paused and clean
            finally:
                if paused:
                    background.resume(pid, pidfd)
                os.close(pidfd)
                settled.set()

        return job

    def adopt_soon(
        self, pid: int, guard: Any, reaped: Callable[[], bool], forks_before: int | None = None
    ) -> None:
        """Move ``pid`` into this cgroup on the cgroup thread, holding ``guard`` (Popen's lock).

        The kernel makes a move wait for an RCU grace period (~10 ms, more under load)
        unless another move happened a moment ago, so the child runs outside the cgroup
        that long whether the caller waits or not: returns once the cgroup thread has begun
        (so the move is not left waiting for this thread to let go of the interpreter).
        The kernel looks the PID up only after that wait, so ``guard`` is held from before
        the write until after it: the child cannot be reaped and its PID recycled first.
        """
        settled = self._settled = threading.Event()
        begun = threading.Event()
        try:
            background.submit(
                lambda: self._adopt_guarded(pid, guard, reaped, begun, settled, forks_before)
            )
        except RuntimeError:  # no new thread at interpreter shutdown: move it here
            self._adopt_guarded(pid, guard, reaped, begun, settled, forks_before)
        begun.wait(_HANDOFF_WAIT)

    def _adopt_guarded(
        self,
        pid: int,
        guard: Any,
        reaped: Callable[[], bool],
        begun: threading.Event,
        settled: threading.Event,
        forks_before: int | None = None,
    ) -> None:
        begun.set()
        try:
            warm_up()
            deadline = time.monotonic() + _GUARD_WAIT
            while not guard.acquire(timeout=0.05):
                if reaped() or time.monotonic() > deadline:
                    return
            try:
                if not reaped():
                    self.adopt(pid, forks_before)
            finally:
                guard.release()
        finally:
            settled.set()

    def settle(self, timeout: float) -> bool:
        """Wait until a deferred adoption is done; whether it is (True if none is pending)."""
        settled = self._settled
        return settled is None or settled.wait(timeout)

    def pids(self) -> set[int]:
        """Every process in the cgroup now (empty once it is gone)."""
        text = _read(os.path.join(self.path, "cgroup.procs"))
        if not text:
            return set()
        return {int(word) for word in text.split() if word.isdigit()}

    def holds(self, pid: int) -> bool:
        """Whether ``pid`` is a member (check after pinning it with a pidfd)."""
        return pid in self.pids()

    def populated(self) -> bool:
        """Whether any process is left in the cgroup."""
        text = _read(os.path.join(self.path, "cgroup.events"))
        if text is None:
            return False
        return "populated 1" in text

    def kill(self) -> bool:
        """SIGKILL every member at once, in the kernel (no PID can be recycled meanwhile)."""
        return _write(os.path.join(self.path, "cgroup.kill"), "1\n")

    def remove(self, wait: float = 0.0) -> bool:
        """Delete the (empty) cgroup, waiting up to ``wait`` seconds for it to empty."""
        deadline = time.monotonic() + wait
        pause = 0.001
        while True:
            try:
                os.rmdir(self.path)
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)  # no event to wait on for an emptying cgroup without inotify
                pause = min(pause * 2, 0.05)
                continue
            return True

    def remove_later(self, wait: float = 10.0) -> None:
        """Kill what is left and delete the cgroup in the background (never blocks)."""
        if not self.settle(0.0):
            # The pending move holds the hierarchy's lock: rmdir would wait it out here.
            with contextlib.suppress(RuntimeError):
                background.submit(lambda: self.remove_later(wait))
            return
        if self.remove():
            return
        self.kill()
        with contextlib.suppress(RuntimeError):
            threading.Thread(
                target=self.remove, args=(wait,), name="mirakuru-cgroup", daemon=True
            ).start()

    def __repr__(self) -> str:
        return f"<Cgroup {self.path}>"


#: How soon after :func:`warm_up` ended the next move surely finds the hierarchy warm:
#: well under a grace period (a few ms), the least time the kernel keeps it warm.
_WARM_FOR = 0.0005
_warmed_at = 0.0


def warm_up() -> None:
    """Pay a cold move's RCU wait (~5 ms) with a no-op move, before the move that matters.

    The first move after an idle spell makes the kernel wait for a grace period, holding
    the hierarchy's lock; one that follows within about a grace period does not. Moving
    this process into the cgroup it is already in changes nothing but takes that wait, so
    the service's move right after it is spawned lands in microseconds: before the service
    can fork anything out of reach, and without holding Popen's reaping lock (which stop()
    and poll() need) for long. Done on every spawn where the child cannot be stopped for
    its move through a pidfd: when the hierarchy is warm it costs one write (~25 us), and
    guessing from the time of our last move misses other processes' moves and a grace
    period shorter than the guess.
    """
    global _warmed_at  # noqa: PLW0603 - a hint for every thread: a stale one means a stop
    mount, own = _mount(), _own_path()
    if mount is not None and own is not None:
        here = os.path.normpath(os.path.join(mount, own.lstrip("/")))
        if _write(os.path.join(here, "cgroup.procs"), f"{os.getpid()}\n"):
            _warmed_at = time.monotonic()


@functools.cache
def _mount() -> str | None:
    return _mount_point()


def create() -> Cgroup | None:
    """A fresh cgroup for one service, or None where unavailable.

    Named ``mirakuru-<our PID>:<random>``, never after the service's ownership token: cgroup
    names are world-readable (``/proc/<pid>/cgroup``, the hierarchy itself), and the token
    is what our exit hook and watchdog look for in environments. A name already taken is
    someone else's: it is never reused.
    """
    parent = base()
    if parent is None:
        return None
    path = os.path.join(parent, f"{_PREFIX}{os.getpid()}:{uuid.uuid4().hex}")
    try:
        os.mkdir(path)
    except OSError:
        return None
    return Cgroup(path)
