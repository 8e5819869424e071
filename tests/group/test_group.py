"""ExecutorGroup and start_all: concurrent start, dependencies, fail fast, reverse stop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import (
    Executor,
    OutputEnded,
    ProcessExitedWithError,
    SimpleExecutor,
    State,
    StateChange,
    probes,
)
from mirakuru.group import ExecutorGroup, start_all


def _barrier_service(directory: Path, name: str, peers: int) -> Executor:
    """A service that is ready only once ``peers`` services (itself included) have started."""
    source = (
        "import pathlib, sys, time\n"
        "d = pathlib.Path(sys.argv[1]); (d / sys.argv[2]).touch()\n"
        "deadline = time.monotonic() + 20\n"
        "while len(list(d.iterdir())) < int(sys.argv[3]) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    return Executor(
        [sys.executable, "-c", source, str(directory), name, str(peers)],
        ready=probes.banner("^ready$"),
        timeout=15,
    )


def _needs_file(path: Path) -> Executor:
    """A service that fails at once unless ``path`` exists when it starts."""
    source = (
        "import os, sys, time\n"
        "if not os.path.exists(sys.argv[1]): sys.exit(4)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    return Executor([sys.executable, "-c", source, str(path)], ready=probes.banner("^ready$"))


def _marker_service(path: Path) -> Executor:
    """A service that creates ``path`` and then reports ready."""
    source = (
        "import pathlib, sys, time\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    return Executor([sys.executable, "-c", source, str(path)], ready=probes.banner("^ready$"))


def _sleeper() -> Executor:
    """A service that never becomes ready by itself."""
    return Executor(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        ready=probes.banner("^never$"),
        timeout=30,
    )


class TestConcurrentStart:
    """Every executor starts in its own thread, so they wait for readiness together."""

    def test_all_start_together(self, tmp_path: Path, assert_gone: list[SimpleExecutor]) -> None:
        """Three services that each need the others running become ready together."""
        executors = [_barrier_service(tmp_path, f"s{i}", 3) for i in range(3)]
        assert_gone.extend(executors)
        with start_all(*executors) as group:
            assert [e.state for e in group] == [State.RUNNING] * 3
        assert [e.state for e in executors] == [State.STOPPED] * 3

    def test_stop_in_reverse_order(self, tmp_path: Path, assert_gone: list[SimpleExecutor]) -> None:
        """The one ready last is stopped first; its dependency after it."""
        first = _marker_service(tmp_path / "first")
        second = _needs_file(tmp_path / "first")
        assert_gone.extend([first, second])
        stopped: list[str] = []

        def recorder(label: str) -> Callable[[StateChange], None]:
            def record(change: StateChange) -> None:
                if change.dest is State.STOPPED:
                    stopped.append(label)

            return record

        first.add_listener(recorder("first"))
        second.add_listener(recorder("second"))
        group = ExecutorGroup(first, second, after={second: [first]})
        group.start().stop()
        assert stopped == ["second", "first"]


class TestDependencies:
    """``after`` holds an executor back until what it depends on is ready."""

    def test_dependency_is_ready_first(
        self, tmp_path: Path, assert_gone: list[SimpleExecutor]
    ) -> None:
        """The dependent sees its dependency's file, which exists only once that one runs."""
        base = _marker_service(tmp_path / "base-up")
        dependent = _needs_file(tmp_path / "base-up")
        assert_gone.extend([base, dependent])
        group = ExecutorGroup().add(dependent, after=[base]).add(base)
        with group:
            assert dependent.running()
            assert base.running()

    def test_unknown_dependency_is_refused(self, tmp_path: Path) -> None:
        """A dependency outside the group is a clear error before anything starts."""
        outsider = _sleeper()
        member = _sleeper()
        with pytest.raises(ValueError, match="not in the group"):
            ExecutorGroup().add(member, after=[outsider]).start()
        assert member.process is None
        assert outsider.process is None

    def test_cycle_is_refused(self) -> None:
        """Two executors waiting for each other are refused, naming the cycle."""
        a, b = _sleeper(), _sleeper()
        with pytest.raises(ValueError, match="cycle"):
            ExecutorGroup(a, b, after={a: [b], b: [a]})
        assert a.process is None
        assert b.process is None


class TestFailFast:
    """One failure stops everything already up and cuts short what is still starting."""

    def test_first_failure_raised_and_nothing_left(
        self, tmp_path: Path, assert_gone: list[SimpleExecutor]
    ) -> None:
        """The failure is raised; the slow one is cut short, the ready one stopped."""
        broken = _needs_file(tmp_path / "missing")
        slow = _sleeper()
        up = _marker_service(tmp_path / "up")
        waiting = _needs_file(tmp_path / "up")
        assert_gone.extend([broken, slow, up, waiting])
        group = ExecutorGroup(up, slow)
        group.add(broken, after=[up]).add(waiting, after=[broken])
        with pytest.raises((ProcessExitedWithError, OutputEnded)) as caught:
            group.start()
        assert caught.value.executor is broken
        assert waiting.process is None  # never started: its dependency failed
        for executor in (broken, slow, up):
            assert not executor.running()
        assert list(caught.value.group_failures) == [broken]  # type: ignore[attr-defined]
