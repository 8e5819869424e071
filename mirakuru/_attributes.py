"""The private attributes mirakuru 1.x-3.x executors had, which subclasses still read.

A mixin of :class:`~mirakuru.base.SimpleExecutor`: each attribute is computed from the
executor's run and settings, so nothing is stored twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mirakuru._executor import (
    PopenSettings,
    budget_at_wall_time,
    merge_popen_kwargs,
    wall_deadline,
)

if TYPE_CHECKING:
    from mirakuru.adapter.run.pump import OutputPump
    from mirakuru.adapter.run.run import Run
    from mirakuru.core.budget import Budget

__all__ = ["ProcessPid", "PublishedAttributes"]


class ProcessPid:
    """``executor.pid``: the PID of the process it runs, or None when nothing runs.

    A descriptor without ``__set__``: a subclass written before it existed may set a ``pid``
    attribute of its own, and that attribute then simply wins.
    """

    def __get__(self, executor: object, owner: type | None = None) -> int | None:
        process = getattr(executor, "process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None


class PublishedAttributes:
    """``_pump``, ``_pidfd``, ``_sig_stop``, ``_sig_kill``, ``_popen_kwargs``, ``_endtime``,
    ``_shell``, ``_stdin``, ``_stdout``, ``_stderr``."""

    if TYPE_CHECKING:  # what the mixin uses of SimpleExecutor
        _run: Run | None
        _budget: Budget | None
        _stop_signal: int
        _kill_signal: int
        _popen_settings: PopenSettings
        cwd: str | None

        @property
        def envvars(self) -> dict[str, str]: ...

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
    def _popen_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for :class:`subprocess.Popen`; ``env`` is complete."""
        given = self._popen_settings
        own: dict[str, Any] = {"stdin": given.stdin, "stdout": given.stdout}
        own["stderr"] = given.stderr
        own.update(universal_newlines=True, shell=given.shell, env=self.envvars, cwd=self.cwd)
        return merge_popen_kwargs(own, given.extra)

    @property
    def _shell(self) -> bool:
        return self._popen_settings.shell

    @property
    def _stdin(self) -> Any:
        return self._popen_settings.stdin

    @property
    def _stdout(self) -> Any:
        return self._popen_settings.stdout

    @property
    def _stderr(self) -> Any:
        return self._popen_settings.stderr

    @property
    def _endtime(self) -> float | None:
        """The start-up deadline as a wall-clock time (``time.time()``), or None."""
        return wall_deadline(self._budget)

    @_endtime.setter
    def _endtime(self, value: float | None) -> None:
        self._budget = budget_at_wall_time(value)
