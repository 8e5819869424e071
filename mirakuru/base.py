"""The drop-in executors: :class:`SimpleExecutor` and :class:`Executor`.

This facade translates the documented class API into core values (budgets, schedules,
lifecycle triggers), drives the adapter (spawn, pump, waiter, tree termination) and turns
outcomes into the published exceptions. Every extension point the published package had
(``pre_start_check``, ``after_start_check``, ``check_subprocess``, ``wait_for``,
``check_timeout``, ``_kill_all_kids``, ``_clear_process``...) is looked up on ``self`` at
call time, so subclasses written for mirakuru 1.x-3.x keep working.
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any, NoReturn, Self, TextIO

from mirakuru._executor import (
    DEFAULT_SLEEP,
    budget_at_wall_time,
    check_signal,
    legacy_timeout,
    merge_popen_kwargs,
    wall_deadline,
)
from mirakuru.adapter import observers, registry, teardown, tree
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.evaluate import attempt, within
from mirakuru.adapter.inotify import DirectoryWatch
from mirakuru.adapter.process import spawn
from mirakuru.adapter.pump import DEFAULT_LIMIT, OutputPump
from mirakuru.adapter.readiness import (
    Readiness,
    check_watched_streams,
    directory_hints,
    exit_code_within,
    only_event_driven,
)
from mirakuru.adapter.run import Run
from mirakuru.adapter.stopping import (
    StartGate,
    kill_leftovers,
    kill_run,
    signal_claimed,
    signal_leader,
    stop_run,
    stop_stand_in,
)
from mirakuru.adapter.teardown import KILL_WAIT, KillPolicy, signal_name
from mirakuru.adapter.waiter import PollWakeups, RunWakeups, Wakeups, wait_past_deadline
from mirakuru.base_env import processes_with_env
from mirakuru.compat import SIGKILL, check_platform
from mirakuru.core.budget import Budget, Timeouts
from mirakuru.core.command import ENV_MARKER, CommandLike, compose_environment, normalize_command
from mirakuru.core.lifecycle import Lifecycle, Listener, State, StateChange, Trigger
from mirakuru.core.probes import PROBE_TYPES, Probe
from mirakuru.core.report import StopReport
from mirakuru.core.schedule import MAX_AUTO_CAP, PollSchedule, event_schedule
from mirakuru.core.validate import check_positive
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutorError,
    InvalidCommand,
    OutputEnded,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    TimeoutExpired,
    check_environment,
    spawn_error,
)

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


#: The timed checks of event-driven readiness where exits are not events.
_FAST = PollSchedule(cap=MAX_AUTO_CAP)


class SimpleExecutor:
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
        self._shell = shell
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
        self._stdin = stdin
        self._stdout = stdout
        self._stderr = stderr
        self._extra_popen_kwargs: dict[str, Any] = dict(popen_kwargs or {})
        self._uuid = f"{os.getpid()}:{uuid.uuid4()}"
        self.process: subprocess.Popen[str] | None = None
        self._budget: Budget | None = None
        self._lifecycle = Lifecycle()
        self._lock = threading.RLock()
        if output_limit is not None:
            check_positive("output_limit", output_limit)
        self._output_limit = output_limit
        self._run: Run | None = None
        self._gate = StartGate()
        self._failure: str | None = None

    # -- the published attributes -----------------------------------------------------

    @property
    def _pump(self) -> OutputPump | None:
        return self._run.pump if self._run is not None else None

    @property
    def _pidfd(self) -> int | None:
        return self._run.pidfd if self._run is not None else None

    @property
    def _sig_stop(self) -> int:
        return self._stop_signal

    @property
    def _sig_kill(self) -> int:
        return self._kill_signal

    @property
    def stop_timeout(self) -> float | None:
        """Grace period between the stop signal and the kill signal, in seconds."""
        return self._timeouts.grace

    @property
    def envvars(self) -> dict[str, str]:
        """The child's whole environment: ours, the extra variables, and the marker."""
        return compose_environment(os.environ, self._envvars, self._uuid)

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for :class:`subprocess.Popen`; ``env`` is complete."""
        own: dict[str, Any] = {"stdin": self._stdin, "stdout": self._stdout}
        own["stderr"] = self._stderr
        own.update(universal_newlines=True, shell=self._shell, env=self.envvars, cwd=self.cwd)
        return merge_popen_kwargs(own, self._extra_popen_kwargs)

    @property
    def _endtime(self) -> float | None:
        """The start-up deadline as a wall-clock time (``time.time()``), or None."""
        return wall_deadline(self._budget)

    @_endtime.setter
    def _endtime(self, value: float | None) -> None:
        self._budget = budget_at_wall_time(value)

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
        if self._lifecycle.can(trigger):
            try:
                self._lifecycle.fire(trigger, monotonic(), detail)
            except Exception:  # a listener's bug must not leave processes behind
                LOG.exception("a state listener of %s failed", self)

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

    # -- starting ---------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether the process this executor started is still alive."""
        process = self.process
        return process is not None and process.poll() is None

    def start(self) -> Self:
        """Spawn the process (unless already spawned) and return at once."""
        with self._lock:
            if self.process is None:
                self._spawn()
                self._set_timeout()
            self._became_ready()
        return self

    def _set_timeout(self, timeout: float | None = None) -> None:
        """Arm the one start-up deadline: ``timeout`` seconds (default: the executor's)."""
        seconds = self._timeout if timeout is None else timeout
        self._budget = Budget.starting_at(monotonic(), seconds)

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
        try:
            process = spawn(argv, kwargs)
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

    def _wakeups(self) -> Wakeups:
        """What wakes a waiter: the run's events (exit, output, a stop), else the clock."""
        if self._run is None or not self._run.real:
            return PollWakeups((), ())
        return RunWakeups(self._run)

    def _became_ready(self) -> None:
        self._fire(Trigger.READY)
        if self._run is not None and self.process is not None:
            self._run.hand_over_weakly(self._exited_on_its_own)

    def _exited_on_its_own(self, code: int) -> None:
        """On the reactor thread: a running process exited (``code``) without being stopped."""
        if not self._lock.acquire(blocking=False):
            return  # someone is starting or stopping it right now: they record the end
        try:
            if self.process is None or self.state is not State.RUNNING:
                return
            # Launchers that daemonize exit 0 while the service lives on: not a failure.
            if code != 0:
                self._fire(Trigger.FAIL, f"exited on its own with code {code}")
        finally:
            self._lock.release()

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
        schedule, adaptive = self._poll_schedule()
        run = self._run
        hints = self._wait_hints() if run is not None and run.real else []
        if run is not None:
            run.activate()
            for hint in hints:
                run.watch(hint, hint=True)

        def timed_out() -> None:
            # check_timeout may be overridden: 1.x style raises, 3.x style returns False.
            if not self.check_timeout():
                self._time_out()

        try:
            wait_past_deadline(
                wait_for,
                lambda: self._budget,
                schedule,
                self._wakeups,
                adaptive=adaptive,
                on_timeout=timed_out,
                step=self._sleep,
            )
        finally:
            for hint in hints:
                if run is not None:
                    run.unwatch(hint)
                hint.close()
        return self

    def _wait_hints(self) -> list[DirectoryWatch]:
        """Watches whose events mean "readiness is probably moments away"."""
        return []

    def _poll_schedule(self) -> tuple[PollSchedule, bool]:
        """The schedule of timed checks, and whether its cap adapts to their cost."""
        # sleep (given or not) is the longest gap: a cheap check is still polled faster.
        return PollSchedule(cap=self._sleep), True

    def check_timeout(self) -> bool:
        """True while the start-up deadline has not passed; else kill and raise."""
        budget = self._budget
        if budget is None or not budget.expired(monotonic()):
            return True
        self._time_out()

    def _time_out(self) -> NoReturn:
        """Kill the process tree and raise :class:`TimeoutExpired`."""
        self._failure = f"timed out after {self._timeout} s"
        tail = self.output_tail()
        self.kill()
        error = TimeoutExpired(self, timeout=self._timeout)
        error.output_tail = tail
        raise error

    # -- stopping ---------------------------------------------------------------------------

    #: What the last ``stop()`` or ``kill()`` did (signalled, escalated, how long), or None.
    last_stop: StopReport | None = None

    def stop(
        self,
        stop_signal: int | None = None,
        expected_returncode: int | None = None,
        *,
        sig: int | None = None,
        exp_sig: int | None = None,
    ) -> Self:
        """Stop the process tree: the stop signal, a grace period, then the kill signal.

        The stop signal goes to the process group, to every descendant and to every
        process carrying this executor's marker; survivors of the grace period
        (``stop_timeout``) get the kill signal, and the history says so. Raises
        :class:`ProcessFinishedWithError` (after cleaning up) when the process ended with
        a code other than ``expected_returncode`` (default: ``-stop_signal``, what a
        process killed by that signal reports). A process that had to be killed after
        the grace period is not an error.
        """
        if sig is not None:
            stop_signal = sig
        if exp_sig is not None:
            if isinstance(exp_sig, bool) or not isinstance(exp_sig, int):
                raise TypeError(f"exp_sig must be an int, got {exp_sig!r}")
            expected_returncode = -exp_sig
        with self._lock:
            if self._interrupt_start():
                return self
            process = self.process
            if process is None:
                return self
            chosen = check_signal(
                "stop_signal", self._stop_signal if stop_signal is None else stop_signal
            )
            if expected_returncode is None:
                expected_returncode = self._expected_returncode
            if expected_returncode is None:
                expected_returncode = -chosen
            self._fire(Trigger.STOP, f"stop with {signal_name(chosen)}")
            if self._run is not None and not self._run.real:
                self._stop_stand_in(chosen)
                return self
            try:
                report = self._terminate(chosen, self._timeouts.grace)
            except BaseException as interruption:
                # Interrupted (Ctrl-C): the tree already got the kill signal; reap it later.
                teardown.reap_later(process)
                self._clear_process()
                self._fire(Trigger.FAIL, f"stop interrupted by {type(interruption).__name__}")
                raise
            exit_code = process.returncode
            self._clear_process()
            if report.escalated or report.leftovers:
                LOG.warning("stopping %s: %s", self, report.note(signal_name))
            if report.escalated:
                self._fire(Trigger.FINISH, report.note(signal_name))
                return self
            if exit_code is not None and exit_code not in (0, expected_returncode):
                self._fire(Trigger.FAIL, f"exit code {exit_code}")
                error = ProcessFinishedWithError(self, exit_code)
                error.output_tail = self.output_tail()
                raise error
            self._fire(Trigger.FINISH, f"exit code {exit_code}")
        return self

    def kill(self, wait: bool = True, sig: int | None = None) -> Self:
        """Send the kill signal to the whole tree; with ``wait``, reap it (bounded).

        ``wait=False`` never blocks: it signals and leaves the reaping to a background
        thread, even while another thread holds the executor (say, waiting in ``start()``).
        """
        chosen = check_signal("sig", self._kill_signal if sig is None else sig)
        if not self._lock.acquire(blocking=wait):
            self._kill_unlocked(chosen)
            return self
        try:
            if wait and self._interrupt_start():
                return self
            if self._gate.other_thread_starting():
                self._kill_unlocked(chosen)  # the waiting start() sees the exit and cleans up
                return self
            process = self.process
            if process is None:
                return self
            starting = self.state is State.STARTING
            if not starting:
                self._fire(Trigger.STOP, f"kill with {signal_name(chosen)}")
            if self._run is not None and not self._run.real:
                self._stop_stand_in(chosen)
                return self
            self.last_stop = kill_run(
                process, self._pidfd, chosen, self._signal_marked, self._claim, wait
            )
            self._clear_process()
            if starting:
                self._fire(Trigger.FAIL, self._failure or f"killed with {signal_name(chosen)}")
            else:
                self._fire(Trigger.FINISH, f"killed with {signal_name(chosen)}")
        finally:
            self._lock.release()
        return self

    def _interrupt_start(self) -> bool:
        """stop()/kill() from another thread while start() waits: cut it short, wait for it.

        Returns False when no other thread is starting this executor.
        """
        run = self._run
        if not self._gate.other_thread_starting() or run is None:
            return False
        self._gate.interrupt(run, self._lock, lambda: self._kill_unlocked(self._kill_signal))
        return True

    def _stop_stand_in(self, sig: int) -> None:
        """A Popen stand-in (a test's mock) is driven only through its own methods."""
        process = self.process
        assert process is not None
        try:
            stop_stand_in(process, sig, self._timeouts.grace)
        finally:
            self._clear_process()
            self._fire(Trigger.FINISH, f"stand-in stopped with {signal_name(sig)}")

    def _kill_unlocked(self, sig: int) -> None:
        """Signal the tree while another thread owns the lifecycle; it will clean up."""
        signal_leader(self.process, sig)
        self._kill_all_kids(sig)

    def _terminate(self, sig: int, grace: float | None) -> StopReport:
        """Stop signal, wait, escalate, reap: what happened, also kept as ``last_stop``."""
        process = self.process
        assert process is not None
        policy = KillPolicy(sig, self._kill_signal, grace, KILL_WAIT)
        self.last_stop = stop_run(process, self._pidfd, policy, self._signal_marked, self._claim)
        return self.last_stop

    def _kill_all_kids(self, sig: int) -> set[int]:
        """Signal every process carrying exactly this executor's marker; the PIDs signalled."""
        return self._signal_marked_except(sig, lambda pid: False)

    def _signal_marked(self, sig: int, already: Callable[[int], bool]) -> set[int]:
        """Signal the marked processes not ``already`` signalled; every marked PID found."""
        if type(self)._kill_all_kids is not SimpleExecutor._kill_all_kids:
            return self._kill_all_kids(sig)  # a subclass took over the published hook
        return self._signal_marked_except(sig, already, found=True)

    def _signal_marked_except(
        self, sig: int, already: Callable[[int], bool], *, found: bool = False
    ) -> set[int]:
        # A module global, so it is looked up at call time: tests patch it on this module.
        pids = processes_with_env(ENV_UUID, self._uuid)
        signalled = signal_claimed(self._claim(pid for pid in pids if not already(pid)), sig)
        return pids if found else signalled

    def _claim(self, pids: Iterable[int]) -> list[tree.Member]:
        """Pin the PIDs that really carry our marker (a recycled PID never does)."""
        return tree.claim_marked(pids, ENV_UUID, self._uuid)

    def _clear_process(self) -> None:
        """Forget the process: stop draining, close descriptors, disarm the deadline."""
        self.process = None
        self._budget = None
        if self._run is not None:
            # Keep the run's spools: they stay readable through output() until the next start.
            self._run.close()
            note = self._run.dropped_note()
            if note is not None:
                self._lifecycle.note(note, monotonic())
        registry.forget(self)

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

    # -- garbage collection and text ----------------------------------------------------

    def __del__(self) -> None:
        # A running executor that is collected kills its tree without waiting. During
        # interpreter shutdown modules may be half torn down: stay silent whatever fails.
        try:
            if self.__dict__.get("process") is not None and registry.owned_here(self):
                self.kill(wait=False)
        except Exception:  # noqa: S110 - nothing can be reported from a finalizer
            pass

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


class Executor(SimpleExecutor):
    """An executor that waits until its process is ready before ``start()`` returns.

    What "ready" means is either a probe passed as ``ready=`` (see :mod:`mirakuru.probes`:
    a banner, a TCP port, an HTTP status, a file, a unix socket, sd_notify, or a
    combination), or whatever a subclass's :meth:`after_start_check` says. When something
    already answers :meth:`pre_start_check` before we start, ``start()`` raises
    :class:`AlreadyRunning`.
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
        ready: Probe | None = None,
        stop_timeout: float | None = None,
        sig_stop: int | None = None,
        sig_kill: int | None = None,
        exp_sig: int | None = None,
    ) -> None:
        """Describe the process and what "ready" means; see :class:`SimpleExecutor`.

        :param ready: a probe from :mod:`mirakuru.probes`; ``start()`` returns once it
            holds. Subclasses that override :meth:`after_start_check` leave it out.
        """
        # The published signature is spelled out again (not *args/**kwargs) so that strict
        # type checkers still check every argument of Executor(...) in user code.
        if ready is not None and not isinstance(ready, PROBE_TYPES):
            raise TypeError(
                f"ready must be a probe from mirakuru.probes, got {ready!r} "
                f"({type(ready).__name__})"
            )
        self._ready: Probe | None = ready
        self._wiring = Readiness(None, self._note_status)
        super().__init__(
            command,
            cwd,
            shell,
            timeout,
            sleep,
            stop_signal,
            kill_signal,
            expected_returncode,
            envvars,
            stdin,
            stdout,
            stderr,
            popen_kwargs,
            stop_timeout=stop_timeout,
            sig_stop=sig_stop,
            sig_kill=sig_kill,
            exp_sig=exp_sig,
        )
        if ready is not None:
            check_watched_streams(ready, {"stdout": self._stdout, "stderr": self._stderr})

    @property
    def ready(self) -> Probe | None:
        """The probe that decides readiness, if one was given."""
        return self._readiness_probe()

    def _readiness_probe(self) -> Probe | None:
        """The readiness probe, built when it is needed (subclasses derive it from their
        published attributes, such as ``host`` and ``port``, at call time)."""
        return self._ready

    @property
    def envvars(self) -> dict[str, str]:
        """The child's whole environment; with sd_notify, also ``NOTIFY_SOCKET``."""
        environment = super().envvars
        if self._wiring.notify is not None:
            environment["NOTIFY_SOCKET"] = self._wiring.notify.address
        return environment

    # -- readiness --------------------------------------------------------------------------

    def pre_start_check(self) -> bool:
        """True if the service already answers before we start it (then we refuse).

        With a ``ready`` probe, the parts that do not need our process (ports, URLs,
        files, sockets) are tried once; output and sd_notify count as not ready.
        """
        probe = self._occupied_probe()
        if probe is None:
            if type(self).after_start_check is Executor.after_start_check:
                raise NotImplementedError(
                    f"{type(self).__name__} has no readiness check: pass ready=<probe> "
                    "or override pre_start_check() and after_start_check()"
                )
            return False
        budget = Budget.starting_at(monotonic(), self._timeout)
        return attempt(probe, within(budget))

    def _occupied_probe(self) -> Probe | None:
        """The probe whose success before start means "already running"."""
        return self._readiness_probe()

    def after_start_check(self) -> bool:
        """True once the started process is ready: the ``ready`` probe, or a subclass's rule."""
        probe = self._readiness_probe()
        if probe is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no readiness check: pass ready=<probe> "
                "or override after_start_check()"
            )
        budget = self._budget or Budget.unbounded()
        if attempt(probe, within(budget), self._wiring.seen):
            return True
        if self._wiring.output_ended(probe, self._pump):
            self._fail_output_ended()
        return False

    def _fail_output_ended(self) -> None:
        exit_code = exit_code_within(self.process, OUTPUT_END_GRACE)
        tail = self.output_tail()
        self._failure = f"output ended without the banner (exit code {exit_code})"
        self.kill()
        error = OutputEnded(self, self._timeout, exit_code)
        error.output_tail = tail
        raise error

    # -- wiring the probe into the process ----------------------------------------------------

    def _spawn(self) -> None:
        probe = self._readiness_probe()
        self._wiring.close()
        self._wiring = Readiness(probe, self._note_status)
        try:
            super()._spawn()
        except BaseException:
            self._wiring.close()
            raise
        if self._run is not None:
            self._wiring.attach(probe, self._run)

    def _note_status(self, status: str) -> None:
        try:
            self._lifecycle.note(f"STATUS={status}", monotonic())
        except Exception:
            LOG.exception("a state listener of %s failed", self)

    def _poll_schedule(self) -> tuple[PollSchedule, bool]:
        # Output and sd_notify readiness can only change when the child writes or exits,
        # and both wake the waiter at once: timed checks are a mere safety net then.
        probe = self._readiness_probe()
        event_driven = (
            probe is not None
            and type(self).after_start_check is Executor.after_start_check
            and only_event_driven(probe)
        )
        if event_driven and self._adaptive:
            # Without a pidfd an exit wakes nobody (unless the output ends): keep polling fast.
            return (event_schedule() if self._pidfd is not None else _FAST), False
        return super()._poll_schedule()

    def _wait_hints(self) -> list[DirectoryWatch]:
        # Pid files and unix sockets appear in a directory: watch it rather than poll fast.
        return directory_hints(self._readiness_probe())

    def _became_ready(self) -> None:
        if self._run is not None:
            self._wiring.read_after_banners(self._pump, self._run.readers)
        self._wiring.close()
        super()._became_ready()

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn the process and wait until it is ready; raise if it cannot become so.

        The lock is not held while waiting: ``stop()`` or ``kill()`` from another thread
        cuts the wait short, and ``start()`` then raises :class:`ExecutorError`.
        """
        with self._lock:
            if self._gate.other_thread_starting():
                return self._await_other_start()
            if self.process is not None:
                self._became_ready()
                return self
            if self._readiness_probe() is None and (
                type(self).after_start_check is Executor.after_start_check
            ):
                self.after_start_check()  # raises NotImplementedError before spawning
            if self.pre_start_check():
                raise AlreadyRunning(self)
            self._spawn()
            self._set_timeout()
            run = self._run
            self._gate.enter()
        try:
            try:
                self.wait_for(self._check_unless_stopped)
                if run is not None and run.stopping:
                    raise self._stopped_error()
            except BaseException as error:
                with self._lock:
                    stopped = run is not None and run.stopping
                    replacement = self._stopped_error() if stopped else None
                    self._abort_start(replacement or error)
                if replacement is not None:
                    raise replacement from None
                raise
            with self._lock:
                self._became_ready()
        finally:
            self._gate.leave()
        return self

    def _check_unless_stopped(self) -> bool:
        run = self._run
        if run is None or run.stopping:
            raise self._stopped_error()
        return self.check_subprocess()

    def _stopped_error(self) -> ExecutorError:
        self._failure = "stopped from another thread during start()"
        error = ExecutorError(self, "stopped during start()")
        error.output_tail = self.output_tail()
        return error

    def _await_other_start(self) -> Self:
        """Another thread is starting this executor: wait for it, bounded by the budget."""
        budget = self._budget
        remaining = budget.remaining(monotonic()) if budget is not None else None
        self._gate.wait_for_other(self._lock, remaining)
        if not self.running():
            raise ExecutorError(self, "the concurrent start() failed")
        return self

    def _abort_start(self, error: BaseException) -> None:
        """Leave nothing running after a failed start, and record why."""
        self._wiring.close()
        if self.process is not None:
            self._failure = self._failure or f"start interrupted by {type(error).__name__}"
            try:
                self.kill()
            except Exception:
                LOG.exception("cleaning up after a failed start of %s", self)
        self._fire(Trigger.FAIL, self._failure or type(error).__name__)

    def check_subprocess(self) -> bool:
        """Fail at once if the process died with an error; else ask after_start_check.

        Exit code 0 is tolerated: launchers that daemonize exit 0 while the service lives.
        """
        process = self.process
        if process is None:
            raise ProcessExitedWithError(self, -1)
        exit_code = process.poll()
        if exit_code is not None and exit_code != 0:
            tail = self._drain_tail()
            self._failure = f"exited with code {exit_code}"
            self.kill()
            error = ProcessExitedWithError(self, exit_code)
            error.output_tail = tail
            raise error
        return self.after_start_check()

    def _drain_tail(self) -> list[str]:
        """The output tail after reading what the dead process left in its pipes."""
        return self._run.drain_tail() if self._run is not None else []


def cleanup_subprocesses() -> None:
    """Kill every process tree started by an executor of this Python process.

    Runs at interpreter exit: each running executor is killed, then every process still
    carrying one of this process's tokens (exactly: another session's never matches).
    """
    registry.kill_all()
    kill_leftovers(ENV_UUID, registry.tokens())


registry.install(cleanup_subprocesses)
