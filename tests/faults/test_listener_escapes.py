"""A state listener that raises a BaseException (pytest.fail(), sys.exit()) cannot leave a
stop or a start half done: the work finishes, then the exception propagates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import OutputExecutor, SimpleExecutor
from mirakuru.core.lifecycle import (
    TRANSITIONS,
    Lifecycle,
    State,
    StateChange,
    Trigger,
    allowed_triggers,
)
from tests.faults.conftest import MARK
from tests.helpers import python_command


class Escape(BaseException):
    """What pytest.fail() raises: not an Exception, so ``except Exception`` lets it by."""


def raising_on(state: State) -> Callable[[StateChange], None]:
    """A listener that raises :class:`Escape` when the executor enters ``state``."""

    def listener(change: StateChange) -> None:
        if change.dest is state:
            raise Escape(f"listener saw {state.value}")

    return listener


def polite(flag: Path) -> list[str]:
    """Prints ``up``; on SIGTERM writes ``flag`` and exits 0."""
    return python_command(
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(flag)!r}, 'w').write('term')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )


class TestStop:
    """stop() signals, waits and records the end before the listener's exception escapes."""

    @pytest.mark.parametrize("state", [State.STOPPING, State.STOPPED])
    def test_stop_finishes(self, tmp_path: Path, mark: str, state: State) -> None:
        """The service gets SIGTERM and is reaped; the state says stopped; then it raises."""
        flag = tmp_path / "flag"
        executor = OutputExecutor(polite(flag), banner="^up$", envvars={MARK: mark}, timeout=30)
        executor.start()
        process = executor.process
        assert process is not None
        executor.add_listener(raising_on(state))
        with pytest.raises(Escape):
            executor.stop()
        assert flag.read_text() == "term"
        assert process.returncode == 0
        assert executor.state is State.STOPPED
        assert not executor.running()

    def test_other_listeners_still_hear(self, mark: str) -> None:
        """Listeners after the raising one are still told of the change."""
        executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}).start()
        heard: list[State] = []
        executor.add_listener(raising_on(State.STOPPING))
        executor.add_listener(lambda change: heard.append(change.dest))
        with pytest.raises(Escape):
            executor.stop()
        assert heard == [State.STOPPING, State.STOPPED]

    def test_kill_finishes(self, mark: str) -> None:
        """kill() kills and reaps before the listener's exception escapes."""
        executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}).start()
        process = executor.process
        assert process is not None
        executor.add_listener(raising_on(State.STOPPING))
        with pytest.raises(Escape):
            executor.kill()
        assert process.returncode is not None
        assert executor.state is State.STOPPED

    def test_outranks_unexpected_exit_code(self, mark: str) -> None:
        """With an unexpected exit code too, the listener's exception is what propagates."""
        executor = OutputExecutor(
            ["sh", "-c", "trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done"],
            banner="^up$",  # printed once the trap is set
            envvars={MARK: mark},
            timeout=30,
        ).start()
        executor.add_listener(raising_on(State.STOPPING))
        with pytest.raises(Escape):
            executor.stop()
        assert executor.state is State.FAILED
        assert not executor.running()


class TestStart:
    """A start() whose listener raises is undone: nothing is left running."""

    @pytest.mark.parametrize("state", [State.STARTING, State.RUNNING])
    def test_start_undone(
        self, mark: str, gone: Callable[[str, float], bool], state: State
    ) -> None:
        """The process tree is killed, the state is failed, and the exception propagates."""
        executor = OutputExecutor(
            ["sh", "-c", "echo up; exec sleep 60"],
            banner="^up$",
            envvars={MARK: mark},
            timeout=30,
        )
        executor.add_listener(raising_on(state))
        with pytest.raises(Escape):
            executor.start()
        assert not executor.running()
        assert executor.state is State.FAILED
        assert "interrupted by Escape" in str(executor.history[-1])
        assert gone(mark, 10.0)


class TestCore:
    """The lifecycle tells every listener, then raises the first escaping exception."""

    def test_every_listener_hears(self) -> None:
        """The change is recorded and all listeners run before the exception propagates."""
        lifecycle = Lifecycle()
        heard: list[str] = []

        def first(change: StateChange) -> None:
            heard.append("first")
            raise Escape

        lifecycle.add_listener(first)
        lifecycle.add_listener(lambda change: heard.append("second"))
        with pytest.raises(Escape):
            lifecycle.fire(Trigger.START, 1.0)
        assert heard == ["first", "second"]
        assert lifecycle.state is State.STARTING
        assert len(lifecycle.history) == 1

    @pytest.mark.parametrize("trigger", sorted(TRANSITIONS, key=str))
    def test_no_trigger_fires_twice(self, trigger: Trigger) -> None:
        """A transition never leads where its own trigger is allowed again: the facade
        relies on it to tell a change an interrupt kept from happening."""
        _, dest = TRANSITIONS[trigger]
        assert trigger not in allowed_triggers(dest)
