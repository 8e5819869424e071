"""Members user code reads, writes or overrides: timeouts, waits, process, cleanup hooks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

import mirakuru.base
from mirakuru import SimpleExecutor, TimeoutExpired
from tests.base.programs import sleeper
from tests.helpers import marked_processes, wait_until

#: The marked processes of ``sh -c "sleep 60 & wait"`` once its child has exec'd.
SH_SLEEP = ["sh", "sleep"]


def names(processes: list[psutil.Process]) -> list[str]:
    """The programs' names, skipping any that exited meanwhile."""
    found = []
    for process in processes:
        try:
            found.append(process.name())
        except psutil.Error:
            continue
    return found


def current_process(executor: SimpleExecutor) -> subprocess.Popen[str] | None:
    """The executor's process now (a call, so type narrowing from earlier does not stick)."""
    return executor.process


class TestDeadline:
    """``_set_timeout``, ``_endtime`` and ``check_timeout``."""

    def test_no_deadline_before_start(self) -> None:
        """Before start there is no deadline and time never runs out."""
        executor = SimpleExecutor(sleeper())
        assert executor._endtime is None
        assert executor.check_timeout() is True

    def test_set_timeout_arms_endtime(self) -> None:
        """``_set_timeout()`` arms a wall-clock ``_endtime`` about ``timeout`` from now."""
        executor = SimpleExecutor(sleeper(), timeout=50)
        before = time.time()
        executor._set_timeout()
        endtime = executor._endtime
        assert endtime is not None
        assert before + 49 < endtime <= time.time() + 50

    def test_set_timeout_without_limit(self) -> None:
        """With ``timeout=None``, arming gives no deadline rather than failing."""
        executor = SimpleExecutor(sleeper(), timeout=None)
        executor._set_timeout()
        assert executor._endtime is None
        assert executor.check_timeout() is True

    def test_endtime_is_writable(self) -> None:
        """Setting ``_endtime`` moves the deadline, as user code does to extend a wait."""
        executor = SimpleExecutor(sleeper(), timeout=5)
        executor._endtime = time.time() + 100
        assert executor.check_timeout() is True
        executor._endtime = None
        assert executor._endtime is None

    def test_passed_endtime_stays_in_the_past(self) -> None:
        """A deadline that has passed reads as that past instant, not as "now"."""
        executor = SimpleExecutor(sleeper(), timeout=5)
        executor._endtime = time.time() - 1
        endtime = executor._endtime
        assert endtime is not None
        assert endtime <= time.time() - 0.5

    def test_expired_check_timeout_kills_and_raises(self) -> None:
        """An expired deadline kills the process and raises ``TimeoutExpired``."""
        executor = SimpleExecutor(sleeper(), timeout=5).start()
        executor._endtime = time.time() - 1
        with pytest.raises(TimeoutExpired):
            executor.check_timeout()
        assert not executor.running()
        assert not marked_processes(executor)


class TestWaitFor:
    """``wait_for(callback)``."""

    def test_returns_self_when_met(self) -> None:
        """A callback that holds makes ``wait_for`` return the executor."""
        executor = SimpleExecutor(sleeper(), timeout=5)
        assert executor.wait_for(lambda: True) is executor

    def test_polls_until_met(self) -> None:
        """The callback is called again until it holds."""
        calls: list[int] = []

        def third_time() -> bool:
            calls.append(1)
            return len(calls) >= 3

        SimpleExecutor(sleeper(), timeout=5).wait_for(third_time)
        assert len(calls) == 3

    def test_timeout_kills_and_raises(self) -> None:
        """A callback that never holds ends in ``TimeoutExpired`` with the tree killed."""
        executor = SimpleExecutor(sleeper(), timeout=0.05).start()
        with pytest.raises(TimeoutExpired) as raised:
            executor.wait_for(lambda: False)
        assert raised.value.timeout == 0.05
        assert not executor.running()
        assert not marked_processes(executor)

    def test_zero_timeout_checks_once(self) -> None:
        """``timeout=0`` still gives the callback one chance."""
        calls: list[int] = []

        def once() -> bool:
            calls.append(1)
            return True

        executor = SimpleExecutor(sleeper(), timeout=0)
        executor._set_timeout()
        assert executor.wait_for(once) is executor
        assert calls == [1]

    def test_overridden_check_timeout_returning_false(self) -> None:
        """A 3.x-style ``check_timeout`` that returns False (no raise) ends the wait."""

        class Reporting(SimpleExecutor):
            def check_timeout(self) -> bool:
                return self._endtime is None or time.time() < self._endtime

        executor = Reporting(sleeper(), timeout=0.05).start()
        with pytest.raises(TimeoutExpired):
            executor.wait_for(lambda: False)
        assert not executor.running()
        assert not marked_processes(executor)


class TestProcessAttribute:
    """``process`` and ``running()``."""

    def test_process_is_a_popen(self) -> None:
        """While running, ``process`` is the ``subprocess.Popen`` of the child."""
        executor = SimpleExecutor(sleeper()).start()
        try:
            assert isinstance(executor.process, subprocess.Popen)
            assert executor.running()
        finally:
            executor.stop()
        assert current_process(executor) is None
        assert not executor.running()

    def test_process_is_writable(self) -> None:
        """User code may set ``process`` (to None, or to a Popen of its own)."""
        executor = SimpleExecutor(sleeper())
        executor.process = None
        assert not executor.running()

    def test_running_is_about_the_direct_child(self) -> None:
        """Once the child exits on its own, ``running()`` is False, before any stop."""
        executor = SimpleExecutor(["true"]).start()
        process = executor.process
        assert process is not None
        process.wait(10)
        assert not executor.running()
        executor.stop()


class TestKillAllKids:
    """``_kill_all_kids(sig)`` and the ``processes_with_env`` hook."""

    def test_returns_signalled_pids(self) -> None:
        """It signals every process carrying our marker and returns their PIDs."""
        executor = SimpleExecutor(["sh", "-c", "sleep 60 & wait"]).start()
        process = executor.process
        assert process is not None
        try:
            # Until the forked shell has exec'd sleep, its environ may read empty mid-exec.
            assert wait_until(lambda: sorted(names(marked_processes(executor))) == SH_SLEEP)
            marked = {p.pid for p in marked_processes(executor)}
            assert executor._kill_all_kids(executor._stop_signal) >= marked - {process.pid}
        finally:
            executor.stop()
        assert not marked_processes(executor)

    def test_looks_up_processes_with_env_at_call_time(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tests patch ``mirakuru.base.processes_with_env``; the patch is honoured."""
        seen: list[tuple[str, str]] = []

        def fake(name: str, value: str) -> set[int]:
            seen.append((name, value))
            return set()

        monkeypatch.setattr(mirakuru.base, "processes_with_env", fake)
        executor = SimpleExecutor(sleeper())
        assert executor._kill_all_kids(executor._stop_signal) == set()
        assert seen == [("mirakuru_uuid", executor._uuid)]


class TestClearProcess:
    """``_clear_process()``."""

    def test_forgets_the_process(self) -> None:
        """After clearing, the executor no longer knows a process or a deadline."""
        executor = SimpleExecutor(sleeper(), timeout=5).start()
        process = executor.process
        assert process is not None
        try:
            executor._clear_process()
            assert executor.process is None
            assert executor._endtime is None
        finally:
            process.kill()
            process.wait(10)


class TestText:
    """``str`` and ``repr``."""

    def test_str(self) -> None:
        """``str`` names the class and the command."""
        text = str(SimpleExecutor(["sleep", "60"]))
        assert "SimpleExecutor" in text
        assert '"sleep 60"' in text

    def test_repr_tells_the_state(self) -> None:
        """``repr`` says whether it runs (with the PID) or what it did."""
        executor = SimpleExecutor(sleeper())
        assert "idle" in repr(executor)
        executor.start()
        process = executor.process
        assert process is not None
        assert f"PID {process.pid}" in repr(executor)
        executor.stop()
        assert "stopped" in repr(executor)


class TestOutputStreams:
    """``output()`` and ``err_output()``."""

    def test_text_streams(self, tmp_path: Path) -> None:
        """Both are readable text streams of what the child printed."""
        executor = SimpleExecutor(
            ["sh", "-c", "echo out; echo err >&2; sleep 60"], stderr=subprocess.PIPE
        ).start()
        try:
            out, err = executor.output(), executor.err_output()
            assert out is not None
            assert err is not None
            assert out.readline() == "out\n"
            assert err.readline() == "err\n"
        finally:
            executor.stop()

    def test_uncaptured_is_none(self) -> None:
        """A stream that is not captured has no reader."""
        executor = SimpleExecutor(sleeper()).start()
        try:
            assert executor.err_output() is None
        finally:
            executor.stop()

    def test_output_survives_stop(self) -> None:
        """What the child printed stays readable after stop, until the next start."""
        executor = SimpleExecutor(["sh", "-c", "echo first; sleep 60"]).start()
        out = executor.output()
        assert out is not None
        assert out.readline() == "first\n"
        executor.stop()
        after = executor.output()
        assert after is not None
        assert after.read() == ""  # the same stream, already read up to here, then EOF
        executor.start()
        try:
            again = executor.output()
            assert again is not None
            assert again.readline() == "first\n"
        finally:
            executor.stop()

    def test_full_output_readable_after_stop(self) -> None:
        """A reader opened only after stop still gets everything, from the start."""
        executor = SimpleExecutor(["sh", "-c", "echo one; echo two; sleep 60"]).start()
        assert wait_until(lambda: len(executor.output_tail()) == 2)
        executor.stop()
        out = executor.output()
        assert out is not None
        assert out.read() == "one\ntwo\n"
