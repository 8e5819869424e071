"""The drop-in executors: :class:`SimpleExecutor` here, :class:`Executor` (from
:mod:`mirakuru.executor`) re-exported where mirakuru always had it.

The facade translates the documented class API into core values (budgets, schedules,
lifecycle triggers), drives one :class:`~mirakuru.adapter.run.run.Run` per start, and turns
outcomes into the published exceptions. Stopping lives in the :mod:`mirakuru._teardown`
mixin and the 1.x-3.x private attributes in :mod:`mirakuru._attributes`. Every extension
point the published package had (``pre_start_check``, ``after_start_check``,
``check_subprocess``, ``wait_for``, ``check_timeout``, ``_kill_all_kids``,
``_clear_process``...) is looked up on ``self`` at call time, so subclasses written for
mirakuru 1.x-3.x keep working.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self, TextIO

from mirakuru._async import AsyncMethods
from mirakuru._attributes import ProcessPid, PublishedAttributes
from mirakuru._executor import (
    DEFAULT_SLEEP,
    PopenSettings,
    check_signal,
    legacy_timeout,
    postpone,
)
from mirakuru._planning import StartPlanning
from mirakuru._teardown import Teardown
from mirakuru._waiting import Waiting
from mirakuru.adapter import interrupts, observers
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.guard import registry
from mirakuru.adapter.posix import SIGKILL, check_platform
from mirakuru.adapter.readiness.wiring import directory_hints
from mirakuru.adapter.run.pump import DEFAULT_LIMIT
from mirakuru.adapter.run.run import Run
from mirakuru.adapter.run.waiter import idle_wakeups, wait_past_deadline
from mirakuru.adapter.spawn.process import spawn
from mirakuru.adapter.teardown.stopping import (
    StartGate,
    kill_leftovers,
)
from mirakuru.base_env import processes_with_env
from mirakuru.core.budget import Budget, Timeouts
from mirakuru.core.command import ENV_MARKER, CommandLike, compose_environment, normalize_command
from mirakuru.core.lifecycle import Lifecycle, Listener, State, StateChange, Trigger
from mirakuru.core.validate import check_count, check_positive
from mirakuru.exceptions import InvalidCommand, check_environment, spawn_error

if TYPE_CHECKING:
    # For type checkers only: at run time the name is supplied by __getattr__ below.
    from mirakuru.executor import Executor

__all__ = [
    "ENV_UUID",
    "IGNORED_ERROR_CODES",
    "Executor",
    "SimpleExecutor",
    "cleanup_subprocesses",
    "processes_with_env",
]

LOG = logging.getLogger(__name__)

#: The environment variable carrying each executor's ownership token to its processes.
ENV_UUID = ENV_MARKER
#: ``errno`` values that mean "the process is already gone" when signalling.
IGNORED_ERROR_CODES = [errno.ESRCH]
#: How long to wait for the exit code of a process whose output just ended.
OUTPUT_END_GRACE = 0.05


class SimpleExecutor(PublishedAttributes, StartPlanning, Waiting, Teardown, AsyncMethods):
    """Runs a command as a subprocess and stops it, with its whole process tree.

    ``start()`` returns as soon as the process is spawned; :class:`Executor` and its
    subclasses also wait until the process is ready.
    """

    def __init__(
        self,
        command: CommandLike,
        cwd: str | None = None,
        shell: bool = False,
        timeout: float | None = 3600,
        sleep: float = DEFAULT_SLEEP,
        stop_signal: int = signal.SIGTERM,
        kill_signal: int = SIGKILL,
        expected_returncode: int | None = None,
        envvars: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.PIPE,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = None,
        popen_kwargs: Mapping[str, Any] | None = None,
        *,
        stop_timeout: float | None = None,
        sig_stop: int | None = None,
        sig_kill: int | None = None,
        exp_sig: int | None = None,
        output_limit: int | None = DEFAULT_LIMIT,
    ) -> None:
        """Describe the process; nothing is spawned until :meth:`start`.

        :param command: a shell-like string (split with :func:`shlex.split`) or a
            sequence of arguments.
        :param timeout: seconds for the whole start-up, and the default grace period
            of :meth:`stop`; ``None`` for no limit.
        :param sleep: the longest pause between readiness checks; left at its default,
            checks are adaptive (first after about 1 ms).
        :param stop_timeout: grace period between the stop and kill signals; defaults to
            ``timeout``.
        :param sig_stop, sig_kill, exp_sig: spellings from mirakuru 1.x/2.x, accepted for
            ``stop_signal``, ``kill_signal`` and ``expected_returncode=-exp_sig``.
        :param output_limit: the most bytes of each captured stream kept for
            :meth:`output` (the head; ``None``: no limit); the tail is always kept.
        """
        overridden = type(self).__init__ is not SimpleExecutor.__init__
        timeout = legacy_timeout(timeout, stacklevel=3 if overridden else 2)
        parsed = normalize_command(command)
        self.command: str = parsed.display
        self.command_parts: Any = parsed.parts
        self.cwd = cwd
        self._timeouts = Timeouts(start=timeout, stop=stop_timeout)
        self._timeout = timeout
        check_positive("sleep", sleep)
        self._sleep = float(sleep)
        self._adaptive = sleep is DEFAULT_SLEEP
        self._stop_signal = check_signal(
            "stop_signal", sig_stop if sig_stop is not None else stop_signal
        )
        self._kill_signal = check_signal(
            "kill_signal", sig_kill if sig_kill is not None else kill_signal
        )
        if exp_sig is not None:
            expected_returncode = -check_signal("exp_sig", exp_sig)
        self._expected_returncode = expected_returncode
        self._envvars: dict[str, str] = dict(envvars or {})
        self._popen_settings = PopenSettings(shell, stdin, stdout, stderr, dict(popen_kwargs or {}))
        self._uuid = f"{os.getpid()}:{uuid.uuid4()}"
        self.process: subprocess.Popen[str] | None = None
        self._budget: Budget | None = None
        self._lifecycle = Lifecycle()
        self._lock = threading.RLock()
        if output_limit is not None:
            check_count("output_limit", output_limit)
        self._output_limit = output_limit
        self._run: Run | None = None
        self._gate = StartGate()
        self._failure: str | None = None

    # -- the documented attributes --------------------------------------------------------

    @property
    def stop_timeout(self) -> float | None:
        """Grace period between the stop signal and the kill signal, in seconds."""
        return self._timeouts.grace

    @property
    def envvars(self) -> dict[str, str]:
        """The child's whole environment: ours, the extra variables, and the marker."""
        return compose_environment(os.environ, self._envvars, self._uuid)

    # -- lifecycle: the new, inspectable part ----------------------------------------------

    @property
    def state(self) -> State:
        """Where the executor is in its lifecycle."""
        return self._lifecycle.state

    @property
    def history(self) -> tuple[StateChange, ...]:
        """Every state change so far, with monotonic timestamps, oldest first."""
        return self._lifecycle.history

    def add_listener(self, listener: Listener) -> Self:
        """Call ``listener(change)`` on every future state change; errors are logged."""
        self._lifecycle.add_listener(listener)
        return self

    def remove_listener(self, listener: Listener) -> Self:
        """Stop calling ``listener``."""
        self._lifecycle.remove_listener(listener)
        return self

    def output_tail(self) -> list[str]:
        """The last lines the process printed on its captured streams."""
        return self._pump.tail() if self._pump is not None else []

    def _fire(self, trigger: Trigger, detail: str | None = None) -> None:
        # Every transition leaves a state the same trigger is not allowed from: if it still
        # is, an interrupt (postponed by _told) came before the move, so make it again.
        for _ in range(2):
            if not self._lifecycle.can(trigger):
                return
            self._told(self._lifecycle.fire, trigger, monotonic(), detail)

    def _note(self, detail: str, bounded: bool = False) -> None:
        """Record ``detail`` in the history without changing state (``bounded``: one of a
        series the service may send without end, see :meth:`Lifecycle.note`)."""
        self._told(lambda: self._lifecycle.note(detail, monotonic(), bounded=bounded))

    def _told(self, record: Callable[..., object], *args: Any) -> None:
        try:
            record(*args)  # which tells the listeners
        except Exception:  # a listener's bug must not leave processes behind
            LOG.exception("a state listener of %s failed", self)
        except BaseException as error:  # pytest.fail(), Ctrl-C: raised once we are done
            if not postpone(error):
                LOG.error("a state listener of %s raised %r", self, error)

    # -- context managers -----------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @contextmanager
    def stopped(self) -> Iterator[Self]:
        """Stop the process for the body of the ``with`` block, then start it again.

        The restart happens even when the body raises; when nothing runs, it does nothing.
        """
        was_running = self.running()
        if was_running:
            self.stop()
        try:
            yield self
        finally:
            if was_running:
                self.start()

    pid = ProcessPid()  # the running process's PID, or None

    # -- starting ---------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether the process this executor started is still alive."""
        process = self.process
        return process is not None and process.poll() is None

    def start(self) -> Self:
        """Spawn the process (unless already spawned) and return at once."""
        return self._guarded_start(self._start_now)

    def _start_now(self) -> Self:
        with self._lock:
            if self.process is None:
                self._spawn()
                self._set_timeout()
            self._became_ready()
        return self

    def _set_timeout(self, timeout: float | None = None) -> None:
        """Arm the one start-up deadline: ``timeout`` seconds (default: the executor's)."""
        if timeout is None:
            self._budget = self._start_plan().budget(monotonic())
        else:
            self._budget = Budget.starting_at(monotonic(), timeout)

    def _spawn(self) -> None:
        """Validate, spawn, and set up pipes, exit watching and cleanup registration."""
        check_platform()
        if not self.command_parts or (self._shell and not str(self.command).strip()):
            raise InvalidCommand(self)
        check_environment(self._envvars)
        self._release_output()
        self._failure = None
        self._fire(Trigger.START)
        kwargs = self._popen_kwargs
        argv: Any = self.command if kwargs.get("shell") else list(self.command_parts)
        # Ctrl-C between Popen() and the lines that record the child would lose it.
        with interrupts.deferred():
            try:
                process = spawn(argv, kwargs, self._uuid, move_later=self._move_later)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
                program = self.command if kwargs.get("shell") else str(self.command_parts[0])
                self._fire(Trigger.FAIL, f"cannot run {program!r}")
                raise spawn_error(self, error, program, kwargs.get("cwd")) from error
            except BaseException as error:
                self._fire(Trigger.FAIL, f"spawn failed: {error!r}")
                raise
            self.process = process
            self._run = Run(process, output_limit=self._output_limit)
            if self._run.real:  # a stand-in's PID is not ours to guard or signal
                registry.track(self)
        observers.notify_start(self)

    #: Whether start() returns without waiting for the process (then its cgroup move, and
    #: the grace period a cold one waits out, happen while it is stopped, off start()).
    _move_later = True

    def _became_ready(self) -> None:
        self._fire(Trigger.READY)
        if self._run is not None and self.process is not None:
            self._run.hand_over_weakly(self._exited_on_its_own)

    # -- waiting ----------------------------------------------------------------------------

    def wait_for(self, wait_for: Callable[[], bool]) -> Self:
        """Call ``wait_for`` until it returns True; on timeout, kill and raise.

        The check runs at once, again the moment the process exits or prints, and
        otherwise on a schedule that starts at about 1 ms and backs off.
        """
        if not callable(wait_for):
            raise TypeError(
                f"wait_for needs a callable returning bool, got {wait_for!r}"
                f" ({type(wait_for).__name__})"
            )
        if self._budget is None:
            self._set_timeout()
        plan = self._start_plan()
        run = self._run
        check = self._counted(wait_for)

        def timed_out() -> None:
            # check_timeout may be overridden: 1.x style raises, 3.x style returns False.
            if not self.check_timeout():
                self._time_out()

        hints = directory_hints(plan.watched) if run is not None and run.real else []
        gate = self._wait_gate(wait_for)
        unready = self._counted_gate(gate) if gate is not None else None
        with nullcontext(idle_wakeups) if run is None else run.serving(hints) as wakeups:
            wait_past_deadline(
                check,
                lambda: self._budget,
                plan.schedule,
                wakeups,
                adaptive=plan.adaptive,
                on_timeout=timed_out,
                step=self._sleep,
                floor=self._poll_floor,
                unready=unready,
            )
        return self

    def _wait_gate(self, wait_for: Callable[[], bool]) -> Callable[[], bool] | None:
        """A cheap sure "not ready yet" that may stand in for ``wait_for`` on a wake-up no
        event caused, if there is one (only for the stock readiness check)."""
        return None

    def _clear_process(self) -> None:
        """Forget the process: stop draining, close descriptors, disarm the deadline."""
        note = None
        with interrupts.deferred():  # all of it or none: an interrupt would retry nothing
            self.process = None
            self._budget = None
            if self._run is not None:
                # Keep the run's spools: they stay readable through output() until the next
                # start.
                self._run.close()
                note = self._run.dropped_note()
            registry.forget(self)
        if note is not None:
            self._note(note)

    def _release_output(self) -> None:
        """Free what the previous run printed; a new start begins a new record."""
        if self._run is not None:
            self._run.release()
            self._run = None

    # -- output -----------------------------------------------------------------------------

    def _reader(self, name: str, position: int = 0) -> io.TextIOWrapper | None:
        return self._run.reader(name, position) if self._run is not None else None

    def output(self) -> TextIO | None:
        """The process's standard output as a text stream (None when not captured).

        Everything the process printed is kept (on disk, not in memory) and readable in
        order, even after the process stopped; reads block until data or end of file.
        """
        return self._reader("stdout")

    def err_output(self) -> TextIO | None:
        """The process's standard error as a text stream (None when not captured)."""
        return self._reader("stderr")

    # -- text ----------------------------------------------------------------------------

    def __str__(self) -> str:
        return f'<{type(self).__module__}.{type(self).__name__}: "{self.command}" {hex(id(self))}>'

    def __repr__(self) -> str:
        process = self.process
        if process is None:
            where = self.state.value
        elif process.returncode is None:
            where = f"{self.state.value}, PID {process.pid}"
        else:
            where = f"{self.state.value}, exited with status {process.returncode}"
        return (
            f'<{type(self).__module__}.{type(self).__name__}: "{self.command}" '
            f"{where} {hex(id(self))}>"
        )


def cleanup_subprocesses() -> None:
    """Kill every process tree started by an executor of this Python process.

    Runs at interpreter exit: each running executor is killed, then every process still
    carrying one of this process's tokens (exactly: another session's never matches).
    """
    registry.kill_all()
    kill_leftovers(ENV_UUID, registry.tokens())


registry.install(cleanup_subprocesses)


def __getattr__(name: str) -> Any:
    # mirakuru.base has always been where Executor is imported from, but Executor builds on
    # SimpleExecutor: importing it here on first use keeps the dependency one-way
    # (executor -> base) while ``from mirakuru.base import Executor`` keeps working.
    if name == "Executor":
        from mirakuru.executor import Executor

        globals()["Executor"] = Executor  # later lookups skip this function
        return Executor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
