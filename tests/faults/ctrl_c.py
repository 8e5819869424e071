"""Ctrl-C at every line of start() and stop(): a driver run in a child interpreter.

A trace function follows the main thread through mirakuru's own code and, once per run,
delivers a real SIGINT (``signal.raise_signal``) at a line where it has not delivered one
before, so the run's Python handler (``KeyboardInterrupt``, or whatever mirakuru defers it
to) fires exactly there. Runs repeat until a whole run passes no new line. After each run
the driver checks what a user relies on: the interrupt was not swallowed, no process of the
executor is left alive, and the state says what happened (never ``starting`` or
``stopping``). Problems are printed one per line as ``PROBLEM ...``; the last line is a
summary ``DONE <runs> <lines>``.
"""

from __future__ import annotations

import dis
import linecache
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import psutil

import mirakuru
from mirakuru import OutputExecutor, PidExecutor, SimpleExecutor
from mirakuru.base import ENV_UUID
from mirakuru.core.lifecycle import State

PACKAGE = os.path.dirname(os.path.abspath(mirakuru.__file__)) + os.sep
#: How long killed processes may take to vanish before they count as left behind.
SETTLE = 5.0
#: No single scenario may take longer than this many runs (a runaway guard).
MAX_RUNS = 3000

Site = tuple[str, int]
_NOP = dis.opmap["NOP"]


class Interrupter:
    """A trace function that sends SIGINT at the first line not interrupted before."""

    def __init__(self, done: set[Site]) -> None:
        self.done = done
        self.fired: Site | None = None
        self.lines: dict[int, set[int]] = {}  # per running frame: the lines it has run

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.fired is None and frame.f_code.co_filename.startswith(PACKAGE):
            return self.local_trace
        return None

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        """Right after a C function called from our code returns (``lock.acquire()``, say):
        where Python really checks for signals, before the result is even stored."""
        if self.fired is not None or event != "c_return":
            return
        if not frame.f_code.co_filename.startswith(PACKAGE) or in_finalizer(frame):
            return
        name = getattr(arg, "__qualname__", None) or getattr(arg, "__name__", "?")
        site = (f"{frame.f_code.co_filename[len(PACKAGE) :]}:{name}", frame.f_lineno)
        if site not in self.done:
            self.fired = site
            self.done.add(site)
            signal.raise_signal(signal.SIGINT)

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.fired is not None:
            return None
        if event == "return":
            self.lines.pop(id(frame), None)
        if event == "line":
            site = (frame.f_code.co_filename[len(PACKAGE) :], frame.f_lineno)
            ran = self.lines.setdefault(id(frame), set())
            again = frame.f_lineno in ran
            ran.add(frame.f_lineno)
            if (again and leaving_with(frame)) or at_nop(frame):
                return self.local_trace  # no signal is handled there (see both)
            if site not in self.done and not in_finalizer(frame):
                self.fired = site
                self.done.add(site)
                signal.raise_signal(signal.SIGINT)
        return self.local_trace


def leaving_with(frame: FrameType) -> bool:
    """Whether a line seen again in ``frame`` is a ``with`` statement: the trace reports its
    exit, which calls the lock's own ``__exit__`` before Python checks for signals (an
    exception raised at that report would skip the release, as no real signal can)."""
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return line.startswith(("with ", "async with "))


def at_nop(frame: FrameType) -> bool:
    """Whether the line starts with a NOP (``try:``, say): Python checks for signals on
    calls and jumps back, never there; and an exception raised there by a trace function
    can escape the ``with`` around it without its ``__exit__`` (CPython 3.11)."""
    return frame.f_code.co_code[frame.f_lasti] == _NOP


def in_finalizer(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a ``__del__``: Python drops whatever is raised there
    (a Ctrl-C included), so it is no place to test what a start or stop does with one."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def alive(token: str) -> list[int]:
    """PIDs of live (not zombie) processes carrying exactly ``token`` as their marker."""
    found = []
    for process in psutil.process_iter():
        try:
            if (
                process.environ().get(ENV_UUID) == token
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def settled(token: str) -> list[int]:
    """Wait (bounded) for the marked processes to vanish; those still alive."""
    deadline = time.monotonic() + SETTLE
    while True:
        left = alive(token)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


def scenarios(folder: str) -> dict[str, Callable[[], SimpleExecutor]]:
    """The executors interrupted: a plain process, a banner wait, a pid file wait."""
    pidfile = os.path.join(folder, "ready.pid")

    def pid_executor() -> SimpleExecutor:
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        return PidExecutor(["sh", "-c", f"touch {pidfile}; exec sleep 60"], pidfile, timeout=20)

    return {
        "simple": lambda: SimpleExecutor(["sleep", "60"], timeout=20),
        "output": lambda: OutputExecutor(
            ["sh", "-c", "echo ready; exec sleep 60"], banner="^ready$", timeout=20
        ),
        "pid": pid_executor,
    }


def check(
    executor: SimpleExecutor, phase: str, fired: Site | None, outcome: str, before: int
) -> list[str]:
    """What is wrong after one run, in words (nothing when all is well).

    ``before`` is the length of the history when the interrupted call began. A stop()
    interrupted before it changed anything (its first line) may leave the service running
    and the state ``running``: that is still the truth, and the executor still owns it.
    """
    where = f"{phase} at {fired[0]}:{fired[1]}" if fired else f"{phase} (no interrupt)"
    problems = []
    if fired is not None and outcome != "interrupted":
        problems.append(f"{where}: the interrupt was swallowed ({outcome})")
    if fired is None and outcome != "completed":
        problems.append(f"{where}: failed without an interrupt ({outcome})")
    state = executor.state
    if state in (State.STARTING, State.STOPPING):
        problems.append(f"{where}: left in state {state.value}")
    untouched = (
        phase == "stop"
        and state is State.RUNNING
        and len(executor.history) == before
        and executor.running()
    )
    if outcome == "interrupted" and not untouched:
        if executor.running() or state is State.RUNNING:
            problems.append(f"{where}: still running ({state.value}) after the interrupt")
        left = settled(executor._uuid)
        if left:
            problems.append(f"{where}: processes left alive: {left}")
    return problems


def held_locks(executor: SimpleExecutor) -> list[str]:
    """The locks (the executor's and the process-wide ones) another thread cannot take
    within a few seconds: one an interrupt left held would hang every later user."""
    from mirakuru.adapter.guard import registry, watchdog
    from mirakuru.adapter.run.reactor import reactor
    from mirakuru.adapter.spawn import background

    locks: dict[str, Any] = {
        "executor": executor._lock,
        "registry": registry._lock,
        "watchdog": watchdog._lock,
        "reactor": reactor()._lock,
        "cgroup": background._worker_lock,
    }
    held: list[str] = []

    def probe() -> None:
        for name, lock in locks.items():
            if lock.acquire(timeout=SETTLE):
                lock.release()
            else:
                held.append(name)

    prober = threading.Thread(target=probe)
    prober.start()
    prober.join()
    return held


def one_run(
    make: Callable[[], SimpleExecutor], phase: str, done: set[Site]
) -> tuple[bool, list[str]]:
    """Start (and for ``stop``, stop) one executor with an interrupt armed; (fired, problems)."""
    executor = make()
    if phase == "stop":
        executor.start()
    interrupter = Interrupter(done)
    before = len(executor.history)
    outcome = "completed"
    sys.settrace(interrupter.global_trace)
    sys.setprofile(interrupter.profile)
    try:
        if phase == "start":
            executor.start()
        else:
            executor.stop()
    except KeyboardInterrupt:
        outcome = "interrupted"
    except BaseException as error:  # reported: only the interrupt may escape
        outcome = f"raised {error!r}"
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    problems = check(executor, phase, interrupter.fired, outcome, before)
    held = held_locks(executor)
    if held:
        problems.append(f"{phase} at {interrupter.fired}: locks left held: {held}")
    owned = executor.process is not None  # else check() has looked for leftovers already
    try:
        executor.kill()
    except Exception as error:  # reported, and the run goes on
        problems.append(f"{phase}: kill() afterwards raised {error!r}")
    if (owned or outcome != "interrupted") and settled(executor._uuid):
        problems.append(f"{phase}: kill() afterwards left processes alive")
    return interrupter.fired is not None, problems


def every_line(phase: str, names: list[str]) -> int:
    """Interrupt every line of ``phase`` (start or stop) of the named scenarios; runs made.

    Lines are shared between scenarios: one interrupted in the first is not repeated.
    """
    runs = 0
    done: set[Site] = set()
    with tempfile.TemporaryDirectory() as folder:
        available = scenarios(folder)
        for name in names:
            for _ in range(MAX_RUNS):
                runs += 1
                fired, problems = one_run(available[name], phase, done)
                for problem in problems:
                    print(f"PROBLEM {name} {problem}", flush=True)
                if not fired:
                    break
            else:
                print(f"PROBLEM {name} {phase}: more than {MAX_RUNS} runs", flush=True)
    print(f"DONE {runs} {len(done)}", flush=True)
    return runs


class LateInterrupt(Exception):
    """A SIGINT that arrived after the call it was meant for had returned."""


def random_run(
    make: Callable[[], SimpleExecutor], phase: str, delay: float
) -> tuple[str, list[str]]:
    """One start or stop with a real SIGINT sent from another thread after ``delay`` s."""
    executor = make()
    if phase == "stop":
        executor.start()
    before = len(executor.history)
    armed = [False]

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            raise KeyboardInterrupt
        raise LateInterrupt  # not during the call: tells the run it came too late

    previous = signal.signal(signal.SIGINT, on_sigint)
    sender = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    outcome = "completed"
    try:
        try:
            sender.start()
            armed[0] = True
            if phase == "start":
                executor.start()
            else:
                executor.stop()
            armed[0] = False
        except KeyboardInterrupt:
            armed[0] = False
            outcome = "interrupted"
        except LateInterrupt:
            pass
        sender.join()
        # Python runs the handler at its next check, which a join of an ended thread may
        # not reach: give it one.
        time.sleep(0)
    except LateInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    fired = ("delay", int(delay * 1e6)) if outcome == "interrupted" else None
    problems = check(executor, phase, fired, outcome, before)
    try:
        executor.kill()
    except Exception as error:
        problems.append(f"{phase}: kill() afterwards raised {error!r}")
    if settled(executor._uuid):
        problems.append(f"{phase}: kill() afterwards left processes alive")
    return outcome, problems


def at_random(names: list[str], runs: int, seed: int) -> int:
    """``runs`` starts and stops of each named scenario, each sent a SIGINT at a random
    moment within about the time the call takes; how many SIGINTs interrupted a call."""
    chance = random.Random(seed)  # noqa: S311 - test timings, not secrets
    hits = 0
    with tempfile.TemporaryDirectory() as folder:
        available = scenarios(folder)
        for name in names:
            for phase in ("start", "stop"):
                executor = available[name]()
                began = time.monotonic()
                executor.start()
                took = time.monotonic() - began
                began = time.monotonic()
                executor.stop()
                took = max(took, time.monotonic() - began)
                for _ in range(runs):
                    delay = chance.uniform(0.0, 1.5 * took)
                    outcome, problems = random_run(available[name], phase, delay)
                    hits += outcome == "interrupted"
                    for problem in problems:
                        print(f"PROBLEM {name} {problem} (SIGINT after {delay:.6f} s)", flush=True)
    print(f"DONE {hits}", flush=True)
    return hits


def main(argv: list[str]) -> int:
    """``lines start|stop NAME...`` or ``random RUNS SEED NAME...``."""
    mode = argv[0]
    if mode == "lines":
        every_line(argv[1], argv[2:])
    else:
        at_random(argv[3:], int(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
