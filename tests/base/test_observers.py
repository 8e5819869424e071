"""Process-wide start observers: every spawn is announced, a failing observer is harmless."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mirakuru import Executor, SimpleExecutor, probes
from mirakuru.adapter import observers
from tests.base.programs import sleeper
from tests.helpers import python_command


@pytest.fixture
def seen() -> Iterator[list[Any]]:
    """The executors announced while the test runs."""
    announced: list[Any] = []
    observers.add(announced.append)
    try:
        yield announced
    finally:
        observers.remove(announced.append)


class TestStartObservers:
    """``mirakuru.adapter.observers`` learns of every start, stopped or still running."""

    def test_each_start_is_announced(self, seen: list[Any]) -> None:
        """Both a simple and a waiting executor are announced once per start."""
        simple = SimpleExecutor(sleeper())
        waiting = Executor(
            python_command("print('up', flush=True)\nimport time\ntime.sleep(60)"),
            ready=probes.banner("up"),
        )
        with simple, waiting:
            pass
        simple.start()
        simple.stop()
        assert seen == [simple, waiting, simple]

    def test_a_failing_observer_does_not_break_start(self, seen: list[Any]) -> None:
        """An observer that raises is logged; the executor starts and the others still hear."""

        def broken(executor: Any) -> None:
            raise RuntimeError("observer bug")

        observers.add(broken)
        try:
            with SimpleExecutor(sleeper()) as executor:
                assert executor.running()
        finally:
            observers.remove(broken)
        assert seen == [executor]

    def test_removed_observer_is_not_called(self) -> None:
        """After ``remove`` nothing more arrives; removing twice is harmless."""
        announced: list[Any] = []
        observers.add(announced.append)
        observers.remove(announced.append)
        observers.remove(announced.append)
        with SimpleExecutor(sleeper()):
            pass
        assert announced == []
