"""The readiness facade: :class:`Executor`, which waits until its process is ready.

It translates a ``ready=`` probe (or a subclass's :meth:`Executor.after_start_check`) into
a wait on the run, and each way the wait can end into the published exception. It is
published as ``mirakuru.base.Executor``, where mirakuru has always exported it.
"""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any, Self

from mirakuru._executor import DEFAULT_SLEEP
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.posix import SIGKILL
from mirakuru.adapter.readiness.evaluate import attempt, refusal, within
from mirakuru.adapter.readiness.findings import Findings
from mirakuru.adapter.readiness.verdict import surely_unready
from mirakuru.adapter.readiness.wiring import (
    Readiness,
    check_watched_streams,
    exit_code_within,
)
from mirakuru.adapter.run.pump import DEFAULT_LIMIT
from mirakuru.adapter.teardown.remains import anything_left
from mirakuru.base import ENV_UUID, OUTPUT_END_GRACE, SimpleExecutor
from mirakuru.core.budget import Budget
from mirakuru.core.command import CommandLike
from mirakuru.core.outcome import (
    exited_note,
    launcher_exit_note,
    left_nothing_note,
    output_ended_note,
)
from mirakuru.core.probes import PROBE_TYPES, Banner, Leaf, Probe, SdNotify
from mirakuru.core.unmet import attempts_phrase, explain
from mirakuru.exceptions import (
    AlreadyRunning,
    ExecutorError,
    LeftNothingRunning,
    OutputEnded,
    ProcessExitedWithError,
)

__all__ = ["Executor"]

LOG = logging.getLogger(__name__)


class Executor(SimpleExecutor):
    """An executor that waits until its process is ready before ``start()`` returns.

    What "ready" means is either a probe passed as ``ready=`` (see :mod:`mirakuru.probes`:
    a banner, a TCP port, an HTTP status, a file, a unix socket, sd_notify, or a
    combination), or whatever a subclass's :meth:`after_start_check` says. When something
    already answers :meth:`pre_start_check` before we start, ``start()`` raises
    :class:`AlreadyRunning`.
    """

    #: Whether the leader was seen to exit 0 during this start, and when we last looked
    #: for what it left running.
    _leader_exit_seen = False
    _remains_looked_at = -math.inf
    _gated_check: Callable[[], bool] | None = None  # the check start() waits with
    _move_later = False  # start() waits for the process anyway: no need to stop it

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
        output_limit: int | None = DEFAULT_LIMIT,
    ) -> None:
        """Describe the process and what "ready" means; see :class:`SimpleExecutor`.

        :param ready: a probe from :mod:`mirakuru.probes`; ``start()`` returns once it
            holds. Subclasses that override :meth:`after_start_check` leave it out.
        """
        # Spelled out again (not *args/**kwargs): type checkers check every argument.
        if ready is not None and not isinstance(ready, PROBE_TYPES):
            raise TypeError(
                f"ready must be a probe from mirakuru.probes, got {ready!r} "
                f"({type(ready).__name__})"
            )
        self._ready: Probe | None = ready
        self._wiring = Readiness(None, self._note_status)
        self._findings = Findings()  # what this start's attempts found, leaf by leaf
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
            output_limit=output_limit,
        )
        if ready is not None:
            check_watched_streams(ready, {"stdout": self._stdout, "stderr": self._stderr})

    @property
    def ready(self) -> Probe | None:
        """The probe that decides readiness, if one was given."""
        return self._readiness_probe()

    def _readiness_probe(self) -> Probe | None:
        """The readiness probe: the one passed as ``ready=``, else :meth:`_derived_probe`."""
        given: Probe | None = getattr(self, "_ready", None)
        return given if given is not None else self._derived_probe()

    def _derived_probe(self) -> Probe | None:
        """The probe a subclass builds from its published attributes (``host``, ``port``,
        ``filename``...) when it is needed, so later changes to them are obeyed."""
        return None

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
        return attempt(probe, within(budget), findings=self._findings)

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
        if attempt(probe, within(budget), self._wiring.seen, self._findings):
            return True
        if self._wiring.output_ended(probe, self._pump):
            self._fail_output_ended()
        return False

    def _fail_output_ended(self) -> None:
        exit_code = exit_code_within(self.process, OUTPUT_END_GRACE)
        tail = self.output_tail()
        unmet = self._unmet_or_none()
        self._failure = output_ended_note(exit_code)
        self.kill()
        error = OutputEnded(self, self._timeout, exit_code)
        error.output_tail = tail
        error.unmet = unmet
        raise error

    # -- what the wait is missing ---------------------------------------------------------------

    def _unmet(self) -> str:
        probe = self._readiness_probe()
        findings = self._findings
        custom = type(self).after_start_check is not Executor.after_start_check
        if probe is None or (custom and not findings.last):
            # A subclass's own check: all we know is that it kept saying no.
            attempts = attempts_phrase(self._attempts)
            return f"{type(self).__name__}.after_start_check() never returned True ({attempts})"
        captured = [
            name
            for name, value in (("stdout", self._stdout), ("stderr", self._stderr))
            if value == subprocess.PIPE
        ]

        def ready(leaf: Leaf) -> bool:
            if isinstance(leaf, Banner | SdNotify):
                return self._wiring.seen(leaf)
            return findings.ready.get(leaf, False)

        return explain(probe, ready, findings.last, self._attempts, captured)

    def _poll_floor(self) -> float:
        # Once an HTTP server answers at all, the application is up: asking it every few
        # milliseconds would not see it ready sooner than `sleep` allows, only flood its log.
        return self._sleep if self._findings.answered else 0.0

    # -- wiring the probe into the process ----------------------------------------------------

    def _spawn(self) -> None:
        probe = self._readiness_probe()
        self._wiring.close()
        self._wiring = Readiness(probe, self._note_status, self._note)
        self._leader_exit_seen = False
        self._remains_looked_at = -math.inf
        try:
            super()._spawn()
        except BaseException:
            self._wiring.close()
            raise
        if self._run is not None:
            self._wiring.attach(probe, self._run, self._uuid)

    def _note_status(self, status: str) -> None:
        # Bounded: a service (or anything it runs) may send STATUS= without end.
        self._note(f"STATUS={status}", bounded=True)

    def _stock_readiness(self) -> bool:
        return type(self).after_start_check is Executor.after_start_check

    def _wait_gate(self, wait_for: Callable[[], bool]) -> Callable[[], bool] | None:
        run, probe = self._run, self._readiness_probe()
        if wait_for is not self._gated_check or run is None or probe is None:
            return None  # not start()'s own wait: nothing says what would answer it
        return surely_unready(probe, run, self._wiring.seen) if self._stock_checks() else None

    def _became_ready(self) -> None:
        if self._run is not None:
            self._wiring.read_after_banners(self._run)
        self._wiring.close()
        super()._became_ready()

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn the process and wait until it is ready; raise if it cannot become so.

        The lock is not held while waiting: ``stop()`` or ``kill()`` from another thread
        cuts the wait short, and ``start()`` then raises :class:`ExecutorError`.
        """
        return self._guarded_start(self._start_and_wait)

    def _start_and_wait(self) -> Self:
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
            self._findings = Findings()  # the check before spawning is this start's first
            began = monotonic()
            if self.pre_start_check():
                raise AlreadyRunning(self)
            self._spawn()
            self._arm_deadline(began)
            run = self._run
            self._gate.enter()
        try:
            try:
                self._gated_check = check = self._start_check(self._surely_refused())
                self.wait_for(check)
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

    def _arm_deadline(self, began: float) -> None:
        """The one start-up deadline, counted from ``began``: looking for a service that
        already runs (a name lookup that stalls, say) is part of the start-up too."""
        if type(self)._set_timeout is SimpleExecutor._set_timeout:
            self._budget = Budget.starting_at(began, self._timeout)
        else:
            self._set_timeout()  # a subclass's own, called as it always was

    def _stock_checks(self) -> bool:
        """Whether readiness is decided by our own checks (no subclass overrides them)."""
        cls = type(self)
        stock = cls.check_subprocess is Executor.check_subprocess
        return stock and cls.after_start_check is Executor.after_start_check

    def _surely_refused(self) -> Callable[[], bool] | None:
        """A ~30 us "not ready yet" for polled ports, if the stock checks are in use."""
        probe = self._readiness_probe()
        return refusal(probe) if self._stock_checks() and probe is not None else None

    def _start_check(self, refused: Callable[[], bool] | None) -> Callable[[], bool]:
        def check() -> bool:
            run = self._run
            if run is None or run.stopping:
                raise self._stopped_error()
            # While the kernel sees nobody listening and no exit was seen (the pidfd wakes
            # the reactor at once), the whole check would only fail: skip it.
            quiet = run.pidfd is not None and run.exit_seen is None
            if refused is not None and quiet and refused():
                return False
            return self.check_subprocess()

        return check

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
        self._wiring.close()
        super()._abort_start(error)

    def check_subprocess(self) -> bool:
        """Fail at once if the process died with an error; else ask after_start_check.

        Exit code 0 is tolerated while anything the process started lives on (launchers
        that daemonize exit 0 while the service starts); once nothing is left, the start
        fails at once with :class:`LeftNothingRunning`.
        """
        process = self.process
        if process is None:
            raise ProcessExitedWithError(self, -1)
        exit_code = process.poll()
        if exit_code is not None and exit_code != 0:
            tail = self._drain_tail()
            self._failure = exited_note(exit_code)
            self.kill()
            error = ProcessExitedWithError(self, exit_code)
            error.output_tail = tail
            raise error
        if self.after_start_check():
            return True
        if exit_code == 0 and self._run is not None and self._run.real:
            return self._launcher_exited(process)  # (a stand-in for Popen has no tree)
        return False

    def _launcher_exited(self, process: subprocess.Popen[str]) -> bool:
        """The leader exited 0 before the service was ready: fail if it left nothing running.

        Looked at when the exit is first seen, then at most once per ``sleep``: without a
        cgroup the look reads every process's ``stat`` (and some environments).
        """
        now = monotonic()
        first = not self._leader_exit_seen
        if not first and now - self._remains_looked_at < self._sleep:
            return False
        self._leader_exit_seen = True
        self._remains_looked_at = now
        left = anything_left(process, ENV_UUID, self._uuid)
        if first:
            self._lifecycle.note(launcher_exit_note(process.pid, left), now)
        if left:
            return False
        tail = self._drain_tail()
        # Its last words, now read, may hold the banner (ready after all) or end the output
        # without it (OutputEnded says more than we would).
        if self.after_start_check():
            return True
        unmet = self._unmet_or_none()
        self._failure = left_nothing_note()
        self.kill()
        error = LeftNothingRunning(self, self._timeout, 0)
        error.output_tail = tail
        error.unmet = unmet
        raise error

    def _drain_tail(self) -> list[str]:
        """The output tail after reading what the dead process left in its pipes."""
        return self._run.drain_tail() if self._run is not None else []


Executor.__module__ = "mirakuru.base"  # its published home, in messages, reprs and docs
sys.modules["mirakuru.base"].Executor = Executor  # type: ignore[attr-defined]
