"""A service is in its own cgroup before it runs, and start() does not wait for the move."""

from __future__ import annotations

import psutil
import pytest

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import background, cgroup, identity
from mirakuru.base import SimpleExecutor
from tests.base.programs import sleeper

#: A safety bound for waits; never a timing target.
BOUND = 30.0

pytestmark = pytest.mark.skipif(not capabilities().cgroup, reason="needs a writable cgroup v2")


def test_started_service_is_in_its_cgroup_once_its_move_settled() -> None:
    """The move (made off the caller's path) lands, and the leader runs on after it."""
    with SimpleExecutor(sleeper()) as executor:
        assert executor.process is not None
        pinned = identity.of(executor.process)
        assert pinned is not None
        assert pinned.group is not None
        assert pinned.group.settle(BOUND)
        assert pinned.group.holds(executor.process.pid)
        # Stopped for the move, continued once it landed.
        assert psutil.Process(executor.process.pid).status() != psutil.STATUS_STOPPED


def test_a_child_paused_for_a_late_move_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a pidfd to stop it through, the move is made in start(): the child is
    stopped for it when the move may be slow, and continued after."""
    monkeypatch.setattr(background, "paused", lambda pid: None)  # as without pidfds
    monkeypatch.setattr(cgroup, "_WARM_FOR", -1.0)  # as if Popen had taken too long
    with SimpleExecutor(["sh", "-c", "echo up; exec sleep 60"]) as executor:
        assert executor.process is not None
        pinned = identity.of(executor.process)
        assert pinned is not None
        assert pinned.group is not None
        assert pinned.group.holds(executor.process.pid)
        output = executor.output()
        assert output is not None
        assert output.readline().strip() == "up"  # it went on running after SIGCONT
        assert psutil.Process(executor.process.pid).status() != psutil.STATUS_STOPPED


def test_stop_right_after_start_leaves_nothing_in_the_cgroup() -> None:
    """stop() right after start() leaves the cgroup empty (or already removed)."""
    executor = SimpleExecutor(sleeper()).start()
    assert executor.process is not None
    pinned = identity.of(executor.process)
    assert pinned is not None
    assert pinned.group is not None
    executor.stop()
    assert pinned.group.settle(BOUND)
    assert pinned.group.pids() == set()


def test_stop_returns_after_the_move_settled() -> None:
    """stop() right after start() leaves no move (and its descriptors) in flight."""
    executor = SimpleExecutor(sleeper()).start()
    assert executor.process is not None
    pinned = identity.of(executor.process)
    assert pinned is not None
    assert pinned.group is not None
    executor.stop()
    assert pinned.group.settle(0.0)


def test_warm_up_leaves_this_process_where_it_was() -> None:
    """The no-op move that pays a cold move's wait moves nobody."""
    with open("/proc/self/cgroup") as before:
        where = before.read()
    cgroup.warm_up()
    with open("/proc/self/cgroup") as after:
        assert after.read() == where
