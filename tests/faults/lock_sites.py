"""A finalizer or a signal handler that kills an executor, injected at every lock site.

Run in a child interpreter (``python -m tests.faults.lock_sites``): before mirakuru is
imported, ``threading.Lock``, ``threading.RLock`` and ``threading.Condition`` are replaced
by factories that hand mirakuru's own modules a wrapped lock. Each time a wrapped lock is
acquired, while it is held, the wrapper interrupts the acquiring thread, once per site (the
line in mirakuru that took the lock) and per kind of interruption:

``gc``
    a running executor kept alive only by a reference cycle is dropped and the cyclic
    collector is run: its ``__del__`` kills its process tree (any thread);
``signal``
    SIGUSR1 is raised; its handler kills another running executor and reads the
    registry, as a cleanup handler does (main thread only, as Python runs handlers there);
``self``
    SIGUSR1 is raised; its handler kills the very executor being started or stopped.

Each scenario (start and stop of a plain process, a banner wait, a pid file, a TCP port, a
start that times out, a start after the watchdog died, an :class:`ExecutorGroup`) repeats
until a whole pass reaches no new site. A deadlock hangs the child, which the test bounds
with a timeout (and the child dumps its threads' stacks before that). The child prints
``SITE <kind> <file>:<line>`` for each interruption, ``PROBLEM ...`` for anything wrong, and
``DONE <interruptions> <passes>`` last.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

_spec = importlib.util.find_spec("mirakuru")
assert _spec is not None
assert _spec.origin is not None
PACKAGE = os.path.dirname(os.path.abspath(_spec.origin)) + os.sep
#: The child's own bound: dump every thread's stack and exit before the test's timeout.
HANG_LIMIT = float(os.environ.get("LOCK_SITES_HANG_LIMIT", "150"))
#: Running victims kept ready for the interruptions of one pass.
POOL = 24
#: How long killed victims may take to vanish before they count as left behind.
SETTLE = 10.0

_REAL_LOCK = threading.Lock
_REAL_RLOCK = threading.RLock
_REAL_CONDITION = threading.Condition

Site = tuple[str, int]


def _our_site(frame: FrameType | None) -> Site | None:
    """The innermost mirakuru line on the stack from ``frame`` (the lock's acquirer)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(PACKAGE):
            return name[len(PACKAGE) :], frame.f_lineno
        frame = frame.f_back
    return None


class Injector:
    """Fires each kind of interruption once per lock site, while the lock is held."""

    def __init__(self) -> None:
        self.armed = False
        self.busy = threading.local()
        self.fired: set[tuple[str, Site]] = set()
        self.new_in_pass = 0
        self.interruptions: dict[str, Callable[[], None]] = {}
        self.kinds: set[str] = set()

    def acquired(self, frame: FrameType | None) -> None:
        if not self.armed or getattr(self.busy, "on", False):
            return
        site = _our_site(frame)
        if site is None:
            return
        main = threading.current_thread() is threading.main_thread()
        for kind, interrupt in self.interruptions.items():
            if kind not in self.kinds or (kind != "gc" and not main):
                continue  # Python runs signal handlers on the main thread only
            if (kind, site) in self.fired:
                continue
            self.fired.add((kind, site))
            self.new_in_pass += 1
            print(f"SITE {kind} {site[0]}:{site[1]}", flush=True)
            self.busy.on = True
            try:
                interrupt()
            finally:
                self.busy.on = False


INJECTOR = Injector()


class SpyLock:
    """A lock of mirakuru's, interrupted by the injector each time it is taken."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got: bool = self._real.acquire(blocking, timeout)
        if got:
            INJECTOR.acquired(sys._getframe(1))
        return got

    def release(self) -> None:
        self._real.release()

    def locked(self) -> bool:
        return bool(self._real.locked())

    def __enter__(self) -> bool:
        self._real.acquire()
        INJECTOR.acquired(sys._getframe(1))
        return True

    def __exit__(self, *exc: object) -> None:
        self._real.release()


class SpyRLock(SpyLock):
    """The re-entrant kind, with what a Condition needs of it."""

    def locked(self) -> bool:
        return bool(self._real._is_owned())

    def _is_owned(self) -> bool:
        return bool(self._real._is_owned())

    def _release_save(self) -> Any:
        return self._real._release_save()

    def _acquire_restore(self, state: Any) -> None:
        self._real._acquire_restore(state)
        INJECTOR.acquired(sys._getframe(1))


def _called_from_us() -> bool:
    return sys._getframe(2).f_code.co_filename.startswith(PACKAGE)


def _lock() -> Any:
    return SpyLock(_REAL_LOCK()) if _called_from_us() else _REAL_LOCK()


def _rlock(*args: Any, **kwargs: Any) -> Any:
    return SpyRLock(_REAL_RLOCK()) if _called_from_us() else _REAL_RLOCK(*args, **kwargs)


def _condition(lock: Any = None) -> Any:
    if lock is None and _called_from_us():
        lock = SpyRLock(_REAL_RLOCK())
    return _REAL_CONDITION(lock)


def install_spies() -> None:
    """From now on mirakuru's modules get wrapped locks (call before importing it)."""
    assert "mirakuru" not in sys.modules, "install the spies before importing mirakuru"
    threading.Lock = _lock  # type: ignore[assignment]
    threading.RLock = _rlock  # type: ignore[assignment]
    threading.Condition = _condition  # type: ignore[assignment,misc]


# -- the scenarios ----------------------------------------------------------------------


def main() -> int:
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    install_spies()
    # Imported only now, so that its locks are the wrapped ones.
    import psutil

    from mirakuru import OutputExecutor, PidExecutor, SimpleExecutor, TCPExecutor
    from mirakuru.adapter.guard import registry, watchdog
    from mirakuru.base import ENV_UUID
    from mirakuru.core.lifecycle import State
    from mirakuru.exceptions import ExecutorError
    from mirakuru.group import ExecutorGroup

    victims: list[SimpleExecutor] = []
    tokens: list[str] = []
    #: How the "self" handler ends what is being started or stopped right now.
    current: list[Callable[[], object]] = []
    problems: list[str] = []

    def top_up(started: bool) -> None:
        """Fill the pool: executors started as usual, or (for the very first pass, so that
        it meets every lock that is first taken then) handed a process we spawned."""
        while len(victims) < POOL:
            victim = SimpleExecutor(["sleep", "300"])
            if started:
                victim.start()
            else:
                victim.process = subprocess.Popen(  # the published, writable attribute
                    ["sleep", "300"],
                    env=victim.envvars,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            victim.cycle = victim  # type: ignore[attr-defined] # only the collector frees it
            tokens.append(victim._uuid)
            victims.append(victim)

    def collect_one() -> None:
        if victims:
            victims.pop()  # now only its own cycle holds it
        gc.collect()

    def on_sigusr1(signum: int, frame: FrameType | None) -> None:
        if handler_kills_current[0]:
            if current:
                current[-1]()
            return
        if victims:
            victims.pop().kill()
        registry.running()
        registry.tokens()

    handler_kills_current = [False]
    signal.signal(signal.SIGUSR1, on_sigusr1)

    def raise_usr1(kill_current: bool) -> Callable[[], None]:
        def interrupt() -> None:
            handler_kills_current[0] = kill_current
            signal.raise_signal(signal.SIGUSR1)

        return interrupt

    INJECTOR.interruptions = {
        "gc": collect_one,
        "signal": raise_usr1(False),
        "self": raise_usr1(True),
    }

    folder = tempfile.mkdtemp(prefix="lock-sites-")
    pidfile = os.path.join(folder, "ready.pid")

    def tcp_service() -> SimpleExecutor:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = (
            "import socket, time\n"
            f"s = socket.create_server(('127.0.0.1', {port}))\n"
            "time.sleep(300)\n"
        )
        return TCPExecutor([sys.executable, "-c", server], host="127.0.0.1", port=port, timeout=30)

    def pid_service() -> SimpleExecutor:
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        return PidExecutor(["sh", "-c", f"touch {pidfile}; exec sleep 300"], pidfile, timeout=30)

    def never_ready() -> SimpleExecutor:
        return OutputExecutor(["sleep", "300"], banner="^never$", timeout=0.2)

    def grouped() -> ExecutorGroup:
        return ExecutorGroup(
            SimpleExecutor(["sleep", "300"]),
            OutputExecutor(["sh", "-c", "echo up; exec sleep 300"], banner="^up$"),
        )

    def kill_watchdog() -> None:
        pid = watchdog.watchdog_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    scenarios: list[
        tuple[str, Callable[[], SimpleExecutor | ExecutorGroup], Callable[[], None] | None]
    ] = [
        ("simple", lambda: SimpleExecutor(["sleep", "300"]), None),
        (
            "output",
            lambda: OutputExecutor(["sh", "-c", "echo up; exec sleep 300"], banner="^up$"),
            None,
        ),
        ("pid", pid_service, None),
        ("tcp", tcp_service, None),
        ("timeout", never_ready, None),
        ("watchdog-died", lambda: SimpleExecutor(["sleep", "300"]), kill_watchdog),
        ("group", grouped, None),
    ]

    def one_pass(
        make: Callable[[], SimpleExecutor | ExecutorGroup], before: Callable[[], None] | None
    ) -> None:
        subject = make()
        if isinstance(subject, ExecutorGroup):
            executors = list(subject.executors)
            steps: tuple[Callable[[], object], ...] = (subject.start, subject.stop)
            current.append(subject.stop)
        else:
            executors = [subject]
            steps = (subject.start, subject.stop, subject.kill)
            current.append(subject.kill)
        tokens.extend(executor._uuid for executor in executors)
        if before is not None:
            before()
        INJECTOR.armed = True
        try:
            for step in steps:
                # ExecutorError: killed by the handler, or the timeout scenario.
                with contextlib.suppress(ExecutorError):
                    step()
        except Exception as error:
            problems.append(f"{subject!r}: raised {error!r}")
        finally:
            INJECTOR.armed = False
            current.pop()
        for executor in executors:
            if executor.state in (State.STARTING, State.STOPPING):
                problems.append(f"{executor!r} left in state {executor.state.value}")
            executor.kill()

    passes = 0
    for name, make, before in scenarios:
        for _ in range(50):
            top_up(started=passes > 0)
            # The first pass takes locks for the first time (the reactor is made, ...):
            # killing its own executor at the first site would end it before those.
            INJECTOR.kinds = {"gc", "signal"} if passes == 0 else set(INJECTOR.interruptions)
            INJECTOR.new_in_pass = 0
            passes += 1
            one_pass(make, before)
            if INJECTOR.new_in_pass == 0:
                break
        else:
            problems.append(f"{name}: new lock sites in every one of 50 passes")

    # Whatever is left of the pool is killed plainly; then nothing of ours may be alive.
    while victims:
        victims.pop().kill()
    gc.collect()
    deadline = time.monotonic() + SETTLE
    wanted = set(tokens)
    while True:
        left = []
        for process in psutil.process_iter():
            try:
                if (
                    process.environ().get(ENV_UUID) in wanted
                    and process.status() != psutil.STATUS_ZOMBIE
                ):
                    left.append(process.pid)
            except (psutil.Error, OSError):
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        problems.append(f"processes left alive: {sorted(left)}")
    for problem in problems:
        print(f"PROBLEM {problem}", flush=True)
    print(f"DONE {len(INJECTOR.fired)} {passes}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
