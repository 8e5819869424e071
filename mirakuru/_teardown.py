"""Stopping an executor: the published ``stop()`` and ``kill()`` and their hooks.

A mixin of :class:`~mirakuru.base.SimpleExecutor`, kept apart because stopping is its
own concern: choosing the signals, cutting a concurrent ``start()`` short, terminating
the whole tree through the adapter, and translating what happened (a
:class:`~mirakuru.core.report.StopReport` and an exit code) into lifecycle triggers and
the published :class:`~mirakuru.exceptions.ProcessFinishedWithError`. The hooks that
mirakuru 1.x-3.x subclasses override (``_kill_all_kids``, ``_clear_process``...) are
still looked up on ``self``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Self, cast

from mirakuru._executor import (
    check_signal,
    operation_began,
    operation_depth,
    operation_ended,
)
from mirakuru.adapter import interrupts
from mirakuru.adapter.guard import registry
from mirakuru.adapter.teardown import terminate, tree
from mirakuru.adapter.teardown.signalling import KILL_WAIT, KillPolicy, signal_name
from mirakuru.adapter.teardown.stopping import (
    kill_run,
    signal_claimed,
    signal_leader,
    stop_run,
    stop_stand_in,
)
from mirakuru.core.command import ENV_MARKER
from mirakuru.core.lifecycle import State, Trigger
from mirakuru.core.report import StopReport
from mirakuru.exceptions import ProcessFinishedWithError

if TYPE_CHECKING:
    import subprocess

    from mirakuru.adapter.run.run import Run
    from mirakuru.adapter.teardown.stopping import StartGate
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.budget import Timeouts

__all__ = ["Teardown"]

LOG = logging.getLogger("mirakuru.base")


class Teardown:
    """``stop()``, ``kill()`` and the teardown hooks of :class:`~mirakuru.base.SimpleExecutor`."""

    if TYPE_CHECKING:  # what the mixin uses of SimpleExecutor
        process: subprocess.Popen[str] | None
        _run: Run | None
        _lock: threading.RLock
        _gate: StartGate
        _stop_signal: int
        _kill_signal: int
        _expected_returncode: int | None
        _timeouts: Timeouts
        _failure: str | None
        _uuid: str

        @property
        def _pidfd(self) -> int | None: ...
        @property
        def state(self) -> State: ...
        def _fire(self, trigger: Trigger, detail: str | None = None) -> None: ...
        def _note(self, detail: str, bounded: bool = False) -> None: ...
        def _clear_process(self) -> None: ...
        def output_tail(self) -> list[str]: ...

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
        return self._operation(
            lambda: self._stop_tree(stop_signal, expected_returncode, sig, exp_sig), "stop"
        )

    def _stop_tree(
        self,
        stop_signal: int | None,
        expected_returncode: int | None,
        sig: int | None,
        exp_sig: int | None,
    ) -> None:
        if sig is not None:
            stop_signal = sig
        if exp_sig is not None:
            if isinstance(exp_sig, bool) or not isinstance(exp_sig, int):
                raise TypeError(f"exp_sig must be an int, got {exp_sig!r}")
            expected_returncode = -exp_sig
        with self._lock:
            if self._interrupt_start():
                return
            process = self.process
            if process is None:
                return
            chosen = check_signal(
                "stop_signal", self._stop_signal if stop_signal is None else stop_signal
            )
            if expected_returncode is None:
                expected_returncode = self._expected_returncode
            if expected_returncode is None:
                expected_returncode = -chosen
            error = None
            try:
                self._fire(Trigger.STOP, f"stop with {signal_name(chosen)}")
                if self._run is not None and not self._run.real:
                    self._stop_stand_in(chosen)
                    return
                report = self._terminate(chosen, self._timeouts.grace)
                exit_code = process.returncode
                self._clear_process()
                error = self._stopped(report, exit_code, expected_returncode)
            except BaseException as interruption:
                self._cut_short(process, "stop", interruption)
                raise
        if error is not None:
            raise error

    def _stopped(
        self, report: StopReport, exit_code: int | None, expected: int
    ) -> ProcessFinishedWithError | None:
        """Record how the stop ended; the error to raise for an unexpected exit code."""
        if report.escalated or report.leftovers:
            LOG.warning("stopping %s: %s", self, report.note(signal_name))
        if report.escalated:
            self._fire(Trigger.FINISH, report.note(signal_name))
        elif exit_code is not None and exit_code not in (0, expected):
            self._fire(Trigger.FAIL, f"exit code {exit_code}")
            error = ProcessFinishedWithError(cast("SimpleExecutor", self), exit_code)
            error.output_tail = self.output_tail()
            return error
        else:
            self._fire(Trigger.FINISH, f"exit code {exit_code}")
        return None

    def kill(self, wait: bool = True, sig: int | None = None) -> Self:
        """Send the kill signal to the whole tree; with ``wait``, reap it (bounded).

        ``wait=False`` never blocks: it signals and leaves the reaping to a background
        thread, even while another thread holds the executor (say, waiting in ``start()``).
        """
        return self._operation(lambda: self._kill_tree(wait, sig), "kill")

    def _kill_tree(self, wait: bool, sig: int | None) -> None:
        chosen = check_signal("sig", self._kill_signal if sig is None else sig)
        if wait:
            with self._lock:
                self._kill_locked(chosen, wait)
            return
        # Never waits, so holding Ctrl-C off costs nothing here, and it cannot land between
        # taking the lock and the try that gives it back.
        with interrupts.deferred():
            if not self._lock.acquire(blocking=False):
                self._kill_unlocked(chosen)
                return
            try:
                self._kill_locked(chosen, wait)
            finally:
                self._lock.release()

    def _kill_locked(self, chosen: int, wait: bool) -> None:
        if wait and self._interrupt_start():
            return
        if self._gate.other_thread_starting():
            self._kill_unlocked(chosen)  # the waiting start() sees the exit and cleans up
            return
        process = self.process
        if process is None:
            return
        try:
            starting = self.state is State.STARTING
            if not starting:
                self._fire(Trigger.STOP, f"kill with {signal_name(chosen)}")
            if self._run is not None and not self._run.real:
                self._stop_stand_in(chosen)
                return
            self.last_stop = kill_run(
                process, self._pidfd, chosen, self._signal_marked, self._claim, wait
            )
            self._clear_process()
            if starting:
                self._fire(Trigger.FAIL, self._failure or f"killed with {signal_name(chosen)}")
            else:
                self._fire(Trigger.FINISH, f"killed with {signal_name(chosen)}")
        except BaseException as interruption:
            self._cut_short(process, "kill", interruption)
            raise

    def _operation(self, work: Callable[[], object], what: str) -> Self:
        """Run ``stop`` or ``kill``; interrupted (Ctrl-C), kill what is left before raising.

        The outermost operation raises what a state listener raised during it.
        """
        outer = operation_depth()
        try:
            operation_began(outer)
            work()
            operation_ended(outer)
        except BaseException as error:
            if not isinstance(error, Exception) and self.process is not None:
                if self._lock.acquire(blocking=False):
                    try:
                        self._cut_short(self.process, what, error)
                    finally:
                        self._lock.release()
                elif self._run is not None and self._run.real:
                    self._kill_unlocked(self._kill_signal)  # the lock's holder cleans up
            operation_ended(outer, error)
            raise
        return self

    def _cut_short(self, process: subprocess.Popen[str], what: str, cause: BaseException) -> None:
        """A stop or kill was interrupted (Ctrl-C): kill whatever is left, record it."""
        with interrupts.deferred():
            if self.process is process:  # not forgotten yet
                run = self._run
                if run is not None and run.real and process.returncode is None:
                    self._kill_unlocked(self._kill_signal)
                    terminate.reap_later(process)
                self._clear_process()
        self._fire(Trigger.FAIL, f"{what} interrupted by {type(cause).__name__}")

    def _guarded_start(self, body: Callable[[], Self]) -> Self:
        """Run a start; if it raises (Ctrl-C included), leave nothing it spawned running."""
        outer = operation_depth()
        previous = self._run
        try:
            operation_began(outer)
            started = body()
            operation_ended(outer)
            return started  # inside the try: an interrupt even here undoes the start
        except BaseException as error:
            me = threading.get_ident()
            with self._lock:
                run = self._run
                ours = run is not None and run is not previous and run.spawner == me
                half = self.state is State.STARTING and self._gate.starter in (None, me)
                if self._gate.starter == me:
                    self._gate.leave()
                if ours or half:
                    self._abort_start(error)
            operation_ended(outer, error)
            raise

    def _abort_start(self, error: BaseException) -> None:
        """Leave nothing running after a failed start, and record why."""
        if self.process is not None:
            self._failure = self._failure or f"start interrupted by {type(error).__name__}"
            if self.state is State.RUNNING:  # readiness was recorded: this start failed
                self._fire(Trigger.FAIL, self._failure)
            try:
                self.kill()
            except Exception:
                LOG.exception("cleaning up after a failed start of %s", self)
        self._fire(Trigger.FAIL, self._failure or type(error).__name__)

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
            else:
                self._note(f"PID {self.process.pid} exited with status 0")
        finally:
            self._lock.release()

    def __del__(self) -> None:
        # A running executor that is collected kills its tree without waiting. During
        # interpreter shutdown modules may be half torn down: stay silent whatever fails.
        try:
            if self.__dict__.get("process") is not None and registry.owned_here(self):
                with interrupts.deferred(later=True):  # a Ctrl-C here would be dropped
                    self.kill(wait=False)
        except Exception:  # noqa: S110 - nothing can be reported from a finalizer
            pass

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
        if type(self)._kill_all_kids is not Teardown._kill_all_kids:
            return self._kill_all_kids(sig)  # a subclass took over the published hook
        return self._signal_marked_except(sig, already, found=True)

    def _signal_marked_except(
        self, sig: int, already: Callable[[int], bool], *, found: bool = False
    ) -> set[int]:
        # Looked up on mirakuru.base at call time: tests patch it there.
        pids = sys.modules["mirakuru.base"].processes_with_env(ENV_MARKER, self._uuid)
        signalled = signal_claimed(self._claim(pid for pid in pids if not already(pid)), sig)
        return pids if found else signalled

    def _claim(self, pids: Iterable[int]) -> list[tree.Member]:
        """Pin the PIDs that really carry our marker (a recycled PID never does)."""
        return tree.claim_marked(pids, ENV_MARKER, self._uuid)
