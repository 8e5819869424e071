"""Extension points are looked up on ``self`` at call time, as published subclasses expect."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mirakuru import Executor, SimpleExecutor, TimeoutExpired
from tests.base.programs import sleeper
from tests.helpers import marked_processes


class Recording(Executor):
    """Remembers how ``stop`` and ``kill`` were called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
        super().__init__(*args, **kwargs)

    def after_start_check(self) -> bool:
        return True

    def stop(self, *args: Any, **kwargs: Any) -> Recording:
        self.calls.append(("stop", args, kwargs))
        return super().stop(*args, **kwargs)

    def kill(self, *args: Any, **kwargs: Any) -> Recording:
        self.calls.append(("kill", args, kwargs))
        return super().kill(*args, **kwargs)


class TestCallsWithoutArguments:
    """Internal calls go through the overridable methods, with no arguments."""

    def test_exit_calls_stop(self) -> None:
        """Leaving ``with`` calls ``self.stop()``."""
        with Recording(sleeper()) as executor:
            pass
        assert executor.calls == [("stop", (), {})]

    def test_stopped_calls_stop_then_start(self) -> None:
        """``stopped()`` calls ``self.stop()`` and restarts."""
        executor = Recording(sleeper()).start()
        with executor.stopped():
            pass
        assert executor.calls == [("stop", (), {})]
        assert executor.running()
        executor.stop()

    def test_timeout_calls_kill(self) -> None:
        """A start-up timeout calls ``self.kill()``."""
        executor = Recording(sleeper(), timeout=0.05)
        executor.after_start_check = lambda: False  # type: ignore[method-assign]
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert ("kill", (), {}) in executor.calls
        assert not marked_processes(executor)

    def test_enter_returns_start(self) -> None:
        """``__enter__`` returns what ``start()`` returns."""
        executor = Recording(sleeper())
        with executor as entered:
            assert entered is executor


class TestChecksPerInstance:
    """Checks replaced on one instance are used at every poll."""

    def test_instance_after_start_check(self) -> None:
        """A readiness check assigned to the instance decides readiness."""
        calls: list[int] = []

        def ready_third_time() -> bool:
            calls.append(1)
            return len(calls) >= 3

        executor = Recording(sleeper(), timeout=30)
        executor.after_start_check = ready_third_time  # type: ignore[method-assign]
        executor.start()
        assert len(calls) == 3
        executor.stop()

    def test_instance_pre_start_check(self) -> None:
        """A pre-start check assigned to the instance is consulted."""
        executor = Recording(sleeper())
        executor.pre_start_check = lambda: True  # type: ignore[method-assign]
        with pytest.raises(Exception, match="already running"):
            executor.start()
        assert executor.process is None


class TestTimestamps:
    """History timestamps are readings of the monotonic clock."""

    def test_monotonic(self) -> None:
        """Every change is stamped between the clock readings around the run."""
        before = time.monotonic()
        executor = SimpleExecutor(sleeper()).start().stop()
        after = time.monotonic()
        assert all(before <= change.at <= after for change in executor.history)
