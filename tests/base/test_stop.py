"""Stopping: signals, exit codes, chaining, context managers, history and listeners."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import (
    ProcessExitedWithError,
    ProcessFinishedWithError,
    SimpleExecutor,
    State,
    StateChange,
    Trigger,
)
from mirakuru.core.lifecycle import ListenerFailed
from tests.base.programs import sleeper
from tests.helpers import marked_processes, python_command, wait_until

#: Exits with code 3 when asked to stop. A second stop signal arriving during interpreter
#: finalization (handlers reset) would turn that into -15: see TestSignalledOnce.
EXITS_3_ON_TERM = python_command(
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


class TestStop:
    """``stop()``."""

    def test_stops_the_tree(self) -> None:
        """stop() ends the child and its descendants, and returns the executor."""
        executor = SimpleExecutor(["sh", "-c", "sleep 60 & sleep 60 & wait"]).start()
        assert wait_until(lambda: len(marked_processes(executor)) == 3)
        assert executor.stop() is executor
        assert not executor.running()
        assert not marked_processes(executor)

    def test_never_started(self) -> None:
        """Stopping or killing an executor that never started does nothing, quietly."""
        executor = SimpleExecutor(sleeper())
        assert executor.stop() is executor
        assert executor.kill() is executor
        assert executor.state is State.IDLE

    def _started_and_up(self) -> SimpleExecutor:
        executor = SimpleExecutor(EXITS_3_ON_TERM).start()
        out = executor.output()
        assert out is not None
        assert out.readline() == "up\n"  # the handler is installed
        return executor

    def test_unexpected_exit_code_raises_after_cleanup(self) -> None:
        """An unexpected exit code raises ProcessFinishedWithError, after cleaning up."""
        executor = self._started_and_up()
        with pytest.raises(ProcessFinishedWithError) as raised:
            executor.stop()
        assert raised.value.exit_code == 3
        assert isinstance(raised.value, ProcessExitedWithError)
        assert executor.process is None
        assert executor.state is State.FAILED
        assert not marked_processes(executor)
        assert executor.stop() is executor  # the second stop is a no-op

    @pytest.mark.parametrize(
        "stop",
        [lambda e: e.stop(None, 3), lambda e: e.stop(expected_returncode=3)],
        ids=["positional", "keyword"],
    )
    def test_expected_exit_code(self, stop: Callable[[SimpleExecutor], object]) -> None:
        """An exit code passed to stop() as expected is not an error."""
        executor = self._started_and_up()
        stop(executor)
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)

    def test_expected_exit_code_from_constructor(self) -> None:
        """An exit code expected by the constructor is not an error."""
        executor = SimpleExecutor(EXITS_3_ON_TERM, expected_returncode=3).start()
        out = executor.output()
        assert out is not None
        assert out.readline() == "up\n"
        executor.stop()
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)

    @pytest.mark.parametrize("where", ["stop", "constructor"])
    def test_exp_sig(self, where: str) -> None:
        """``exp_sig=N`` expects the child to end killed by signal N (code ``-N``)."""
        relays = python_command(
            "import os, signal, time\n"
            "def relay(*_):\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "    os.kill(os.getpid(), signal.SIGUSR1)\n"
            "signal.signal(signal.SIGTERM, relay)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n"
        )
        kwargs = {"exp_sig": signal.SIGUSR1} if where == "constructor" else {}
        executor = SimpleExecutor(relays, **kwargs).start()  # type: ignore[arg-type]
        out = executor.output()
        assert out is not None
        assert out.readline() == "up\n"
        if where == "stop":
            executor.stop(exp_sig=signal.SIGUSR1)
        else:
            executor.stop()
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)

    @pytest.mark.parametrize("keyword", ["stop_signal", "sig"])
    def test_other_stop_signal(self, keyword: str) -> None:
        """A different stop signal can be chosen per call; its code is then expected."""
        executor = SimpleExecutor(sleeper()).start()
        executor.stop(**{keyword: signal.SIGINT})
        assert executor.state is State.STOPPED
        assert executor.history[-1].detail is not None

    def test_exit_zero_is_fine(self) -> None:
        """A process that already exited 0 stops without error."""
        executor = SimpleExecutor(["true"]).start()
        process = executor.process
        assert process is not None
        process.wait(10)
        executor.stop()
        assert executor.state is State.STOPPED

    def test_escalates_to_kill(self) -> None:
        """A child ignoring the stop signal is killed after the grace period, quietly."""
        stubborn = python_command(
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n"
        )
        executor = SimpleExecutor(stubborn, stop_timeout=0.1).start()
        out = executor.output()
        assert out is not None
        assert out.readline() == "up\n"
        executor.stop()
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)


class TestKill:
    """``kill()``."""

    def test_kill_tree(self) -> None:
        """kill() ends the whole tree and returns the executor."""
        executor = SimpleExecutor(["sh", "-c", "sleep 60 & sleep 60 & wait"]).start()
        assert executor.kill() is executor
        assert not executor.running()
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)


class TestChaining:
    """Everything returns the executor."""

    def test_chain(self) -> None:
        """start().stop().start().kill() reads as it runs."""
        executor = SimpleExecutor(sleeper())
        assert executor.start().stop().start().kill() is executor
        assert not marked_processes(executor)


class TestContextManagers:
    """``with executor:`` and ``with executor.stopped():``."""

    def test_with_starts_and_stops(self) -> None:
        """The with block runs the service; leaving it stops it."""
        with SimpleExecutor(sleeper()) as executor:
            assert executor.running()
        assert not executor.running()
        assert not marked_processes(executor)

    def test_with_stops_on_error(self) -> None:
        """An error in the body still stops the service."""
        executor = SimpleExecutor(sleeper())
        with pytest.raises(RuntimeError), executor:
            raise RuntimeError("body failed")
        assert not executor.running()
        assert not marked_processes(executor)

    def test_with_calls_overridden_stop(self) -> None:
        """Leaving the block calls ``self.stop()`` with no arguments."""
        calls: list[tuple[object, ...]] = []

        class Recording(SimpleExecutor):
            def stop(self, *args: object, **kwargs: object) -> Recording:
                calls.append(args + tuple(kwargs.items()))
                return super().stop()

        with Recording(sleeper()):
            pass
        assert calls == [()]

    def test_stopped_restarts(self) -> None:
        """stopped() stops for the body and starts again afterwards."""
        executor = SimpleExecutor(sleeper()).start()
        first = executor.process
        with executor.stopped() as inside:
            assert inside is executor
            assert not executor.running()
        assert executor.running()
        assert executor.process is not first
        executor.stop()
        assert not marked_processes(executor)

    def test_stopped_restarts_when_body_raises(self) -> None:
        """The restart happens even when the body raises."""
        executor = SimpleExecutor(sleeper()).start()
        with pytest.raises(RuntimeError), executor.stopped():
            raise RuntimeError("body failed")
        assert executor.running()
        executor.stop()
        assert not marked_processes(executor)

    def test_stopped_when_not_running(self) -> None:
        """stopped() on an executor that is not running does nothing either way."""
        executor = SimpleExecutor(sleeper())
        with executor.stopped():
            assert not executor.running()
        assert not executor.running()
        assert executor.process is None


class TestHistory:
    """The state history and listeners."""

    def test_normal_run(self) -> None:
        """A normal run goes idle → starting → running → stopping → stopped."""
        executor = SimpleExecutor(sleeper())
        assert executor.state is State.IDLE
        executor.start().stop()
        changes = executor.history
        assert [(c.source, c.dest) for c in changes] == [
            (State.IDLE, State.STARTING),
            (State.STARTING, State.RUNNING),
            (State.RUNNING, State.STOPPING),
            (State.STOPPING, State.STOPPED),
        ]
        assert [c.trigger for c in changes] == [
            Trigger.START,
            Trigger.READY,
            Trigger.STOP,
            Trigger.FINISH,
        ]
        times = [c.at for c in changes]
        assert times == sorted(times)

    def test_listeners_hear_every_change(self) -> None:
        """A listener receives each StateChange as it happens; removed ones hear nothing."""
        heard: list[StateChange] = []
        silent: list[StateChange] = []
        executor = SimpleExecutor(sleeper())
        assert executor.add_listener(heard.append) is executor
        executor.add_listener(silent.append).remove_listener(silent.append)
        executor.start().stop()
        assert heard == list(executor.history)
        assert all(isinstance(change, StateChange) for change in heard)
        assert silent == []

    def test_failing_listener_does_not_break_stop(self) -> None:
        """A listener that raises is reported (a warning); start and stop still do their job."""

        def broken(change: StateChange) -> None:
            raise RuntimeError("listener bug")

        executor = SimpleExecutor(sleeper()).add_listener(broken)
        with pytest.warns(ListenerFailed, match="listener bug"):
            executor.start().stop()
        assert executor.state is State.STOPPED
        assert not marked_processes(executor)


class TestSignalledOnce:
    """Each process of the tree gets the stop signal once, not once per way we found it."""

    def test_leader_gets_one_stop_signal(self, tmp_path: Path) -> None:
        """A real-time stop signal (queued, never merged) reaches the child exactly once."""
        count_file = tmp_path / "count"
        sig = signal.SIGRTMIN
        counter = python_command(
            "import signal, sys\n"
            f"signal.pthread_sigmask(signal.SIG_BLOCK, [{sig}])\n"
            "print('up', flush=True)\n"
            f"signal.sigwaitinfo([{sig}])\n"
            "count = 1\n"
            # The sender queues all its signals within microseconds of the first.
            f"while signal.sigtimedwait([{sig}], 0.2) is not None:\n"
            "    count += 1\n"
            f"open({str(count_file)!r}, 'w').write(str(count))\n"
        )
        executor = SimpleExecutor(counter, stop_signal=sig, expected_returncode=0).start()
        out = executor.output()
        assert out is not None
        assert out.readline() == "up\n"
        executor.stop()
        assert not marked_processes(executor)
        assert count_file.read_text() == "1"
