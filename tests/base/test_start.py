"""Starting: readiness, early death, timeouts, interruptions, chatty children."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirakuru import (
    AlreadyRunning,
    Executor,
    ProcessExitedWithError,
    SimpleExecutor,
    State,
    TimeoutExpired,
)
from tests.base.programs import exits_with, prints_then_marks, sleeper, touches_then_sleeps
from tests.helpers import marked_processes, wait_until


class FileReady(Executor):
    """Ready once a file exists: the simplest subclass in the published style."""

    def __init__(self, command: list[str], path: Path, **kwargs: object) -> None:
        self.path = path
        super().__init__(command, **kwargs)  # type: ignore[arg-type]

    def after_start_check(self) -> bool:
        return self.path.exists()


class Never(Executor):
    """Never ready."""

    def after_start_check(self) -> bool:
        return False


class Always(Executor):
    """Ready at once."""

    def after_start_check(self) -> bool:
        return True


class TestReadiness:
    """``Executor.start()`` waits for ``after_start_check``."""

    def test_waits_until_ready(self, tmp_path: Path) -> None:
        """start() returns once the child made itself ready, and returns the executor."""
        path = tmp_path / "ready"
        executor = FileReady(touches_then_sleeps(str(path)), path, timeout=30)
        assert executor.start() is executor
        try:
            assert path.exists()
            assert executor.running()
            assert executor.state is State.RUNNING
        finally:
            executor.stop()
        assert not marked_processes(executor)

    def test_simple_executor_returns_at_once(self) -> None:
        """A SimpleExecutor is running as soon as it is spawned."""
        executor = SimpleExecutor(sleeper())
        assert executor.start() is executor
        assert executor.state is State.RUNNING
        executor.stop()

    def test_start_twice_is_harmless(self) -> None:
        """Starting a running executor keeps the same process."""
        executor = Always(sleeper()).start()
        process = executor.process
        assert executor.start().process is process
        executor.stop()

    def test_no_readiness_check_defined(self) -> None:
        """A bare Executor has no idea what ready means: an error before anything spawns."""
        executor = Executor(sleeper())
        with pytest.raises(NotImplementedError, match="after_start_check"):
            executor.start()
        assert executor.process is None
        assert not marked_processes(executor)

    def test_timeout_none_means_no_deadline(self) -> None:
        """``timeout=None`` arms no deadline at all."""
        executor = Always(sleeper(), timeout=None).start()
        assert executor._endtime is None
        executor.stop()

    def test_timeout_zero_still_checks_once(self) -> None:
        """``timeout=0`` gives a service that is ready at once its one check."""
        executor = Always(sleeper(), timeout=0).start()
        assert executor.running()
        executor.stop()


class TestEarlyExit:
    """The process dies while we wait for it."""

    @pytest.mark.parametrize("code", [1, 3, 127])
    def test_nonzero_exit_fails_at_once(self, code: int) -> None:
        """A non-zero exit raises ProcessExitedWithError with the code and output tail."""
        executor = Never(exits_with(code, "boom"), timeout=60, stderr=subprocess.PIPE)
        with pytest.raises(ProcessExitedWithError) as raised:
            executor.start()
        error = raised.value
        assert error.exit_code == code
        assert "[stdout] boom" in error.output_tail
        assert "[stderr] boom" in error.output_tail
        assert f"non-zero code: {code}." in str(error)
        assert executor.state is State.FAILED
        assert not executor.running()
        assert not marked_processes(executor)

    def test_exit_zero_is_tolerated(self, tmp_path: Path) -> None:
        """A launcher that exits 0 (daemonizing) is not a failure; readiness decides."""
        path = tmp_path / "ready"
        command = ["sh", "-c", f"touch {path}; exit 0"]
        executor = FileReady(command, path, timeout=30).start()
        assert executor.state is State.RUNNING
        executor.stop()
        assert not marked_processes(executor)


class TestTimeout:
    """Start-up that never becomes ready."""

    def test_kills_tree_and_raises(self) -> None:
        """TimeoutExpired is raised after the whole tree was killed."""
        executor = Never(["sh", "-c", "sleep 60 & sleep 60"], timeout=0.2)
        with pytest.raises(TimeoutExpired) as raised:
            executor.start()
        assert raised.value.timeout == 0.2
        assert "timed out after 0.2 seconds" in str(raised.value)
        assert not executor.running()
        assert executor.state is State.FAILED
        assert not marked_processes(executor)

    def test_can_start_again_after_failing(self, tmp_path: Path) -> None:
        """A failed executor can be started again."""
        path = tmp_path / "ready"
        executor = FileReady(touches_then_sleeps(str(path)), path, timeout=0)
        executor.path = tmp_path / "never"
        with pytest.raises(TimeoutExpired):
            executor.start()
        executor.path = path
        executor._timeout = 30
        executor.start()
        assert executor.state is State.RUNNING
        executor.stop()
        assert not marked_processes(executor)


class TestAlreadyRunning:
    """``pre_start_check`` says something already answers."""

    def test_refuses_without_spawning(self) -> None:
        """AlreadyRunning is raised and nothing is spawned."""

        class Occupied(Always):
            def pre_start_check(self) -> bool:
                return True

        executor = Occupied(sleeper())
        with pytest.raises(AlreadyRunning) as raised:
            executor.start()
        assert "seems to be already running" in str(raised.value)
        assert executor.process is None
        assert executor.state is State.IDLE
        assert not marked_processes(executor)


class TestInterruption:
    """Ctrl-C while waiting for readiness."""

    def test_keyboard_interrupt_leaves_nothing(self) -> None:
        """KeyboardInterrupt propagates, nothing is left running, and the state is FAILED."""

        class Interrupted(Executor):
            def after_start_check(self) -> bool:
                raise KeyboardInterrupt

        executor = Interrupted(["sh", "-c", "sleep 60 & sleep 60"])
        with pytest.raises(KeyboardInterrupt):
            executor.start()
        assert executor.state is State.FAILED
        assert executor.process is None
        assert not marked_processes(executor)


class TestChattyChild:
    """A child that prints a lot after start never blocks on its pipe."""

    @pytest.mark.parametrize("cls", [SimpleExecutor, Always])
    def test_megabyte_after_start(self, cls: type[SimpleExecutor], tmp_path: Path) -> None:
        """1 MB printed after start: the child runs on to its marker, all output readable."""
        marker = tmp_path / "done"
        executor = cls(prints_then_marks(1_000_000, str(marker))).start()
        try:
            assert wait_until(marker.exists, 30)
            out = executor.output()
            assert out is not None
            assert len(out.readline()) == 100
        finally:
            executor.stop()
        assert not marked_processes(executor)

    def test_megabyte_before_ready(self, tmp_path: Path) -> None:
        """1 MB printed while start() still waits: readiness still arrives."""
        marker = tmp_path / "done"
        executor = FileReady(prints_then_marks(1_000_000, str(marker)), marker, timeout=30)
        executor.start()
        executor.stop()
        assert not marked_processes(executor)


def test_no_descriptor_leak() -> None:
    """Starting and stopping repeatedly does not leak file descriptors (pidfds, pipes)."""
    executor = SimpleExecutor(sleeper())
    executor.start().stop()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        executor.start().stop()
    assert len(os.listdir("/proc/self/fd")) <= before
