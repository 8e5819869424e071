"""A running stack grows (``StackRun.add``) and shrinks (``StackRun.remove``) while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mirakuru import Stack, StackFailed
from mirakuru._stack_engine import StackRun
from mirakuru.core.stack import Status
from tests.helpers import wait_until
from tests.stack.programs import listener, py, write_stack

#: cache <- api <- worker, and db on its own; each counts its starts in NAME-starts.
STACK = """
[services.cache]
command = {cache}
ready = {{ tcp = "127.0.0.1:{{port}}" }}

[services.db]
command = {db}
ready = {{ tcp = "127.0.0.1:{{port}}" }}

[services.api]
command = {api}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
depends_on = ["cache"]
env = {{ CACHE_PORT = "{{cache.port}}" }}

[services.worker]
command = {worker}
depends_on = ["api"]
"""


def _stack(folder: Path) -> Stack:
    counted = {
        name: listener(0.0, str(folder / f"{name}-starts"), "0") for name in ("cache", "db", "api")
    }
    worker = py("-c", "import time\nwhile True: time.sleep(60)")
    return Stack.load(write_stack(folder, STACK.format(worker=worker, **counted)))


def _starts(folder: Path, name: str) -> int:
    path = folder / f"{name}-starts"
    return len(path.read_text()) if path.exists() else 0


def _pid(run: StackRun, name: str) -> int:
    process = run[name].process
    assert process is not None
    return process.pid


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@pytest.fixture
def run(tmp_path: Path) -> Iterator[StackRun]:
    """A run of cache alone, stopped after the test."""
    started = _stack(tmp_path).start("cache")
    yield started
    started.stop()


class TestAdd:
    """Services added to a running stack reuse what already runs."""

    def test_dependency_is_shared(self, run: StackRun, tmp_path: Path) -> None:
        """api added after cache: cache is not started again; api gets cache's port."""
        cache_pid = _pid(run, "cache")
        assert run.add(["api"]) == ("api",)
        assert list(run) == ["cache", "api"]
        assert _pid(run, "cache") == cache_pid
        assert (_starts(tmp_path, "cache"), _starts(tmp_path, "api")) == (1, 1)
        assert run["api"].envvars["CACHE_PORT"] == str(run.ports["cache"])
        assert run.status("api") is Status.READY

    def test_adding_what_runs_starts_nothing(self, run: StackRun, tmp_path: Path) -> None:
        """Asking again for cache returns no name and starts nothing."""
        assert run.add(["cache"]) == ()
        assert _starts(tmp_path, "cache") == 1

    def test_failure_leaves_the_rest_running(self, run: StackRun, tmp_path: Path) -> None:
        """A service that cannot start is cleaned up; cache runs on, the run is not failed."""
        stack = Stack.load(
            write_stack(
                tmp_path,
                (tmp_path / "mirakuru.toml").read_text()
                + '\n[services.broken]\ncommand = ["false"]\nready = { tcp = "127.0.0.1:1" }\n'
                'depends_on = ["cache"]\n',
            )
        )
        with pytest.raises(StackFailed, match="broken"):
            run.add(["broken"], spec=stack.spec)
        assert list(run) == ["cache"]
        assert run.failure is None
        assert run["cache"].running()

    def test_unknown_name(self, run: StackRun) -> None:
        """A name the stack does not declare is refused before anything starts."""
        with pytest.raises(Exception, match="no service 'nope'"):
            run.add(["nope"])


class TestRemove:
    """Removing a service stops it, and what depends on it, while the rest runs on."""

    def test_dependents_go_too(self, run: StackRun) -> None:
        """Removing cache stops worker, api and cache, in that order; db stays."""
        run.add(["worker", "db"])
        pids = {name: _pid(run, name) for name in run}
        assert run.remove(["cache"]) == ("worker", "api", "cache")
        assert list(run) == ["db"]
        stopped = [pids[name] for name in ("cache", "api", "worker")]
        assert wait_until(lambda: all(_gone(pid) for pid in stopped), 10)
        assert run["db"].running()

    def test_alone(self, run: StackRun) -> None:
        """``dependents=False`` stops only the service named."""
        run.add(["api"])
        assert run.remove(["api"], dependents=False) == ("api",)
        assert list(run) == ["cache"]

    def test_added_again_on_its_port(self, run: StackRun, tmp_path: Path) -> None:
        """A removed service started again gets its old port back, and a new process."""
        port, pid = run.ports["cache"], _pid(run, "cache")
        run.remove(["cache"])
        assert wait_until(lambda: _gone(pid), 10)
        assert run.add(["cache"]) == ("cache",)
        assert run.ports["cache"] == port
        assert _pid(run, "cache") != pid
        assert _starts(tmp_path, "cache") == 2

    def test_crash_after_removal_is_ignored(self, run: StackRun) -> None:
        """The exit of a removed service's process does not touch its successor."""
        run.add(["api"])
        run.remove(["api"])
        run.add(["api"])
        assert run.failure is None
        assert run.status("api") is Status.READY
