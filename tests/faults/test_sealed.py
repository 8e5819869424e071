"""A sealed cgroup (the leader moved in before any task was created) stands in for the walks.

Each test starts a leader that forks nothing until told to, retries until its move into the
cgroup is sealed, and checks that a clean stop skips the ``/proc`` walks and still leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import psutil
import pytest

import mirakuru.base
from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import cgroup, identity, process
from mirakuru.adapter.teardown import tree
from mirakuru.base import SimpleExecutor
from tests.faults import programs
from tests.faults.conftest import MARK, SETTLE
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(not capabilities().cgroup, reason="needs a writable cgroup v2")

#: Safety bound for every wait; never a timing target.
BOUND = 10.0
#: Attempts at a sealed start: another process forking while the move lands unseals it.
ATTEMPTS = 30


@pytest.fixture
def fifo() -> Iterator[str]:
    """A named pipe the leader blocks on until the test lets it fork."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "go")
        os.mkfifo(path)
        yield path


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the ``/proc`` walks run from now on (the real walks, counted)."""
    seen: list[str] = []
    snapshot, marked = tree.snapshot, mirakuru.base.processes_with_env

    def counted_snapshot(pid: int) -> list[tree.Member]:
        seen.append("snapshot")
        return snapshot(pid)

    def counted_marked(name: str, value: str) -> set[int]:
        seen.append("marker")
        return marked(name, value)

    monkeypatch.setattr(tree, "snapshot", counted_snapshot)
    monkeypatch.setattr(mirakuru.base, "processes_with_env", counted_marked)
    return seen


def sealed_start(
    command: list[str],
    mark: str,
    factory: Callable[..., SimpleExecutor] = SimpleExecutor,
    **kwargs: object,
) -> SimpleExecutor:
    """Start ``command`` until its cgroup is sealed (skip the test if it never is)."""
    for _ in range(ATTEMPTS):
        executor = factory(command, envvars={MARK: mark}, **kwargs).start()
        group = group_of(executor)
        if group.settle(BOUND) and group.sealed():
            return executor
        executor.stop()
    pytest.skip("the machine kept forking while each move landed")


def group_of(executor: SimpleExecutor) -> cgroup.Cgroup:
    """The executor's own cgroup."""
    pinned = identity.of(executor.process)
    assert pinned is not None
    assert pinned.group is not None
    return pinned.group


def go(executor: SimpleExecutor, fifo: str) -> list[psutil.Process]:
    """Let the leader fork; its tree, each process pinned, once the leader reports it."""
    with open(fifo, "w") as pipe:
        pipe.write("go\n")
    out = executor.output()
    assert out is not None
    words = out.readline().split()
    assert words[:1] == ["ready"], words
    return [psutil.Process(int(pid)) for pid in words[2:]]


def alive(member: psutil.Process) -> bool:
    """Whether ``member`` still runs (a zombie counts as gone)."""
    try:
        return member.is_running() and member.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def survivors(processes: list[psutil.Process]) -> list[int]:
    """PIDs of ``processes`` still running (zombies count as gone); killed if any."""
    left = [member for member in processes if alive(member)]
    for member in left:
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(left, timeout=SETTLE)
    return [member.pid for member in left]


class TestSealedStop:
    """A clean stop of a sealed tree reads only the cgroup and leaves nothing behind."""

    def test_tree_and_wiped_daemons(self, mark: str, fifo: str, walks: list[str]) -> None:
        """Thirty descendants and five daemons that wiped their environment all go."""
        executor = sealed_start(programs.forks_on_go(fifo), mark)
        processes = go(executor, fifo)
        assert len(processes) == 35
        assert group_of(executor).sealed()
        walks.clear()
        executor.stop()
        assert survivors(processes) == []
        assert walks == []
        assert executor.last_stop is not None
        assert not executor.last_stop.escalated

    def test_child_that_left_the_cgroup(self, mark: str, fifo: str) -> None:
        """A child that moved itself out of the cgroup still gets the stop signal (its group's).

        stop() cannot wait for a process it does not see, so the child may outlive stop()
        by the moment it takes to act on SIGTERM.
        """
        parent = cgroup.base()
        assert parent is not None
        command = programs.leaves_cgroup_on_go(fifo, os.path.join(parent, "cgroup.procs"))
        executor = sealed_start(command, mark)
        processes = go(executor, fifo)
        assert processes[0].pid not in group_of(executor).pids()
        executor.stop()
        assert wait_until(lambda: not alive(processes[0]), BOUND)

    def test_escalation_walks(self, mark: str, fifo: str, walks: list[str]) -> None:
        """A stop that has to escalate still walks the process table for late escapees."""
        command = programs.forks_on_go(fifo, children=2, daemons=0, stubborn=True)
        executor = sealed_start(command, mark, stop_timeout=0.2)
        processes = go(executor, fifo)
        walks.clear()
        executor.stop()
        assert survivors(processes) == []
        assert walks == ["snapshot", "marker"]
        assert executor.last_stop is not None
        assert executor.last_stop.escalated

    def test_overridden_hook_is_still_called(self, mark: str, fifo: str) -> None:
        """A subclass's ``_kill_all_kids`` runs on every stop, sealed or not."""
        calls: list[int] = []

        class Hooked(SimpleExecutor):
            def _kill_all_kids(self, sig: int) -> set[int]:
                calls.append(sig)
                return super()._kill_all_kids(sig)

        executor = sealed_start(programs.forks_on_go(fifo, children=1, daemons=0), mark, Hooked)
        calls.clear()  # the unsealed attempts were stopped too
        processes = go(executor, fifo)
        executor.stop()
        assert survivors(processes) == []
        assert calls == [executor._stop_signal]


class TestSealing:
    """What seals a cgroup: nothing created between the spawn and the move."""

    def test_a_fork_before_the_move_unseals(self) -> None:
        """A leader that forked before its move is not sealed, whatever else happened."""
        command = ["sh", "-c", "sleep 60 & echo forked; wait"]
        child = process.spawn(command, {"stdout": subprocess.PIPE, "text": True})
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "forked\n"
            group = cgroup.create()
            assert group is not None
            try:
                assert group.adopt(child.pid, process.forks_before(child))
                assert not group.sealed()
            finally:
                group.kill()
                child.wait(BOUND)
                assert group.remove(BOUND)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(BOUND)
            if child.stdout is not None:
                child.stdout.close()

    def test_the_counter_counts_our_spawns(self) -> None:
        """The kernel's task counter, read before a spawn, has grown once it returns."""
        before = process.forks_so_far()
        assert before is not None
        child = process.spawn(["true"], {})
        child.wait(BOUND)
        after = process.forks_so_far()
        assert after is not None
        assert after > before
        assert process.forks_before(child) is not None


class TestUnsealedStop:
    """Without a sealed cgroup the marker scan reads only processes younger than the leader."""

    def test_orphaned_daemon_is_found(self, mark: str, walks: list[str]) -> None:
        """A double-forked daemon that left the tree and the group is still stopped."""
        executor = SimpleExecutor(
            programs.double_forking_daemon(leader_stays=True), envvars={MARK: mark}
        ).start()
        out = executor.output()
        assert out is not None
        words = out.readline().split()
        assert words[:1] == ["ready"], words
        daemon = psutil.Process(int(words[2]))
        pinned = identity.of(executor.process)
        if pinned is not None and pinned.group is not None:
            pinned.group.settle(BOUND)
            pinned.group._sealed = False  # as if the move had landed late
        executor.stop()
        assert not alive(daemon)
        assert "marker" not in walks  # no environment read of every process

    def test_young_processes_exclude_older_ones(self) -> None:
        """The survey's young set has a process started after the leader, not older ones."""
        leader = process.spawn(["sh", "-c", "sleep 60 & wait"], {})
        try:
            started = identity.start_time(leader.pid)
            assert started is not None
            later = process.spawn(["sleep", "60"], {})
            try:
                assert wait_until(lambda: len(tree.descendants(leader.pid)) == 1, BOUND)
                found, young = tree.survey(leader.pid, started)
                try:
                    assert young is not None
                    assert later.pid in young
                    assert os.getpid() not in young
                    assert leader.pid not in young
                    assert {member.pid for member in found}.isdisjoint(young)
                    assert len(found) == 1
                finally:
                    for member in found:
                        member.close()
            finally:
                later.kill()
                later.wait(BOUND)
        finally:
            os.killpg(leader.pid, 9)
            leader.wait(BOUND)
