"""Fault injection against teardown: stubborn trees, escapees, dead owners, Ctrl-C, threads."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import psutil
import pytest

from mirakuru.base import ENV_UUID, Executor, SimpleExecutor
from mirakuru.core.lifecycle import State
from mirakuru.exceptions import ProcessExitedWithError, ProcessFinishedWithError
from tests.faults import programs
from tests.faults.conftest import MARK, alive_with
from tests.helpers import needs_watchdog_pins, wait_until

#: Bound for every wait on a child of the test itself (drivers, decoys).
BOUND = 10.0


def started(command: list[str], mark: str, **kwargs: object) -> tuple[SimpleExecutor, list[str]]:
    """Start ``command`` tagged with ``mark`` and wait for its ``ready`` line."""
    executor = SimpleExecutor(command, envvars={MARK: mark}, **kwargs).start()  # type: ignore[arg-type]
    out = executor.output()
    assert out is not None
    words = out.readline().split()
    assert words[:1] == ["ready"], words
    return executor, words


def run_driver(body: str, mark: str, **env: str) -> subprocess.Popen[str]:
    """Start a Python driver that owns executors (without the mark itself)."""
    environment = {**os.environ, "FAULT_MARK_VALUE": mark, **env}
    return subprocess.Popen(
        programs.driver(body),
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reap(owner: subprocess.Popen[str]) -> None:
    """Kill a driver and close its pipes (left open, they would warn when collected)."""
    owner.kill()
    owner.wait(BOUND)
    for pipe in (owner.stdout, owner.stderr):
        if pipe is not None:
            pipe.close()


SERVICES = """
import os, time
from mirakuru import SimpleExecutor
mark = {"MIRAKURU_FAULT_MARK": os.environ["FAULT_MARK_VALUE"]}
services = [SimpleExecutor(["sleep", "60"], envvars=mark).start() for _ in range(2)]
"""


class TestStubbornTree:
    """Fifty descendants ignoring SIGTERM are escalated, killed and reaped."""

    def test_stop_escalates(self, mark: str) -> None:
        """stop() escalates after stop_timeout, leaves nothing alive and says so."""
        executor, _ = started(programs.stubborn_tree(), mark, stop_timeout=0.3)
        assert len(alive_with(mark)) == 51
        executor.stop()
        assert alive_with(mark) == []
        report = executor.last_stop
        assert report is not None
        assert report.escalated
        assert len(report.ignored) == 51
        assert report.leftovers == ()
        assert executor.state is State.STOPPED
        detail = executor.history[-1].detail or ""
        assert "escalated to SIGKILL after 0.3 s: 51 process(es) ignored SIGTERM" in detail

    def test_kill(self, mark: str) -> None:
        """kill() takes the whole tree down at once."""
        executor, _ = started(programs.stubborn_tree(), mark)
        executor.kill()
        assert alive_with(mark) == []
        assert executor.state is State.STOPPED


class TestEscapees:
    """Processes that left the group or the tree are still found by their marker."""

    @pytest.mark.parametrize(
        "command",
        [
            pytest.param(programs.double_forking_daemon(leader_stays=True), id="daemon"),
            pytest.param(programs.double_forking_daemon(leader_stays=False), id="daemon-orphan"),
            pytest.param(programs.changes_group(), id="own-group"),
        ],
    )
    def test_stop_finds_them(self, mark: str, command: list[str]) -> None:
        """stop() leaves no escapee behind."""
        executor, words = started(command, mark, stop_timeout=1)
        escapee = int(words[2])
        assert psutil.pid_exists(escapee)
        executor.stop()
        assert alive_with(mark) == []
        assert executor.last_stop is not None
        assert not executor.last_stop.escalated


class TestZombieGroup:
    """A group whose leader already exited is torn down without signalling a stale group."""

    @pytest.mark.parametrize("reaped", [False, True], ids=["leader-zombie", "leader-reaped"])
    def test_members_are_stopped(self, mark: str, reaped: bool) -> None:
        """The leader's orphans get the stop signal through the marker scan."""
        executor, words = started(programs.group_outlives_leader(), mark, stop_timeout=1)
        process = executor.process
        assert process is not None
        if reaped:
            assert process.wait(BOUND) == 0
        else:
            leader = psutil.Process(int(words[1]))
            assert wait_until(lambda: leader.status() == psutil.STATUS_ZOMBIE, BOUND)
        assert len(alive_with(mark)) == 2
        executor.stop()
        assert alive_with(mark) == []
        assert executor.state is State.STOPPED


class TestExitCodes:
    """A process exiting with 143 on SIGTERM (the JVM's habit) and ``expected_returncode``."""

    def test_unexpected_143_raises_after_cleanup(self, mark: str) -> None:
        """stop() raises ProcessFinishedWithError(143) only once everything is gone."""
        executor, _ = started(programs.exits_143_on_term(), mark, stop_timeout=1)
        with pytest.raises(ProcessFinishedWithError) as raised:
            executor.stop()
        assert raised.value.exit_code == 143
        assert alive_with(mark) == []
        assert executor.state is State.FAILED
        assert executor.stop() is executor  # the second stop is a no-op

    @pytest.mark.parametrize("where", ["constructor", "stop"])
    def test_expected_143(self, mark: str, where: str) -> None:
        """With expected_returncode=143 the same exit is a clean stop."""
        extra = {"expected_returncode": 143} if where == "constructor" else {}
        executor, _ = started(programs.exits_143_on_term(), mark, stop_timeout=1, **extra)
        if where == "stop":
            executor.stop(expected_returncode=143)
        else:
            executor.stop()
        assert alive_with(mark) == []
        assert executor.state is State.STOPPED


class _NeverReady(Executor):
    """An executor whose readiness check never passes (and may raise on a given call)."""

    def __init__(self, mark: str, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at
        super().__init__(["sleep", "60"], envvars={MARK: mark}, timeout=30)

    def after_start_check(self) -> bool:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return False


class TestKillNoWait:
    """kill(wait=False) never blocks, not even while another thread is inside start()."""

    def test_returns_and_tree_goes(self, mark: str, gone: Callable[[str, float], bool]) -> None:
        """The tree is gone soon after kill(wait=False) returns."""
        executor, _ = started(programs.stubborn_tree(2, 2), mark)
        executor.kill(wait=False)
        assert executor.process is None
        assert gone(mark, BOUND)

    def test_while_start_holds_the_lock(
        self, mark: str, gone: Callable[[str, float], bool]
    ) -> None:
        """A kill from another thread ends a start() that is waiting for readiness."""
        executor = _NeverReady(mark)
        errors: list[BaseException] = []

        def start() -> None:
            try:
                executor.start()
            except BaseException as error:
                errors.append(error)

        starter = threading.Thread(target=start)
        starter.start()
        assert wait_until(lambda: executor.calls > 0, BOUND)
        killer = threading.Thread(target=executor.kill, kwargs={"wait": False})
        killer.start()
        killer.join(BOUND)
        assert not killer.is_alive()
        starter.join(BOUND)
        assert not starter.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], ProcessExitedWithError)
        assert executor.state is State.FAILED
        assert gone(mark, BOUND)


class TestCtrlC:
    """KeyboardInterrupt during start() leaves nothing running and the state ``failed``."""

    def test_interrupt_in_check(self, mark: str) -> None:
        """An interrupt raised while waiting for readiness kills the tree."""
        executor = _NeverReady(mark, interrupt_at=3)
        with pytest.raises(KeyboardInterrupt):
            executor.start()
        assert alive_with(mark) == []
        assert executor.state is State.FAILED
        assert executor.process is None

    def test_real_sigint(self, mark: str) -> None:
        """SIGINT delivered to the owner while it waits in start() leaves nothing behind."""
        body = """
import os
from mirakuru.base import Executor
class NeverReady(Executor):
    def after_start_check(self):
        if not getattr(self, "said", False):
            self.said = True
            print("waiting", flush=True)
        return False
executor = NeverReady(["sleep", "60"], timeout=30,
                      envvars={"MIRAKURU_FAULT_MARK": os.environ["FAULT_MARK_VALUE"]})
try:
    executor.start()
except KeyboardInterrupt:
    print("interrupted", executor.state.value, flush=True)
"""
        owner = run_driver(body, mark)
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline() == "waiting\n"
            owner.send_signal(signal.SIGINT)
            out, err = owner.communicate(timeout=BOUND)
        finally:
            reap(owner)
        assert out == "interrupted failed\n", err
        assert alive_with(mark) == []


@needs_watchdog_pins
class TestOwnerDeath:
    """When the owner is SIGKILLed, the watchdog kills its services within a second or so."""

    def test_sigkill_owner(self, mark: str, gone: Callable[[str, float], bool]) -> None:
        """Both services of a SIGKILLed owner are gone within 2 s."""
        owner = run_driver(SERVICES + 'print("ready", flush=True)\ntime.sleep(60)\n', mark)
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline() == "ready\n"
            assert len(alive_with(mark)) == 2
            owner.kill()
            owner.wait(BOUND)
            assert gone(mark, 2.0)
        finally:
            reap(owner)

    def test_forked_child_does_not_keep_them_alive(
        self, mark: str, gone: Callable[[str, float], bool]
    ) -> None:
        """A forked child of the owner does not hold the watchdog's pipe open."""
        body = SERVICES + (
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(60)\n"
            "    os._exit(0)\n"
            'print("ready", child, flush=True)\n'
            "time.sleep(60)\n"
        )
        owner = run_driver(body, mark)
        child = None
        try:
            assert owner.stdout is not None
            words = owner.stdout.readline().split()
            assert words[0] == "ready"
            child = psutil.Process(int(words[1]))
            owner.kill()
            owner.wait(BOUND)
            assert gone(mark, 2.0)
            assert child.is_running()
        finally:
            reap(owner)
            if child is not None:
                child.kill()
                psutil.wait_procs([child], timeout=BOUND)

    def test_opt_out(self, mark: str) -> None:
        """With MIRAKURU_WATCHDOG=0 nothing watches: the services outlive a SIGKILLed owner."""
        owner = run_driver(
            SERVICES + 'print("ready", flush=True)\ntime.sleep(60)\n', mark, MIRAKURU_WATCHDOG="0"
        )
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline() == "ready\n"
            owner.kill()
            owner.wait(BOUND)
            orphans = alive_with(mark)
            assert len(orphans) == 2
        finally:
            reap(owner)
        for orphan in orphans:
            orphan.kill()
        psutil.wait_procs(orphans, timeout=BOUND)


class TestInterpreterExit:
    """Executors still running when the interpreter exits are killed, quietly."""

    @pytest.mark.parametrize("watchdog", ["1", "0"])
    def test_atexit(self, mark: str, watchdog: str) -> None:
        """Services left running by a script that just ends are gone when it has exited."""
        owner = run_driver(
            SERVICES + 'print("ready", flush=True)\n', mark, MIRAKURU_WATCHDOG=watchdog
        )
        out, err = owner.communicate(timeout=BOUND)
        assert (out, err, owner.returncode) == ("ready\n", "", 0)
        assert alive_with(mark) == []

    def test_cycle_at_shutdown(self, mark: str) -> None:
        """Executors caught in a reference cycle at exit are killed and finalized silently."""
        body = SERVICES + (
            'cycle = [services]\ncycle.append(cycle)\ndel services\nprint("ready", flush=True)\n'
        )
        owner = run_driver(body, mark, MIRAKURU_WATCHDOG="0")
        out, err = owner.communicate(timeout=BOUND)
        assert (out, err, owner.returncode) == ("ready\n", "", 0)
        assert alive_with(mark) == []


class TestCollected:
    """A running executor dropped without stop() kills its tree when collected."""

    def test_dropped(self, mark: str, gone: Callable[[str, float], bool]) -> None:
        """Collecting the executor takes the tree down."""
        executor, _ = started(programs.stubborn_tree(2, 2), mark)
        del executor
        gc.collect()
        assert gone(mark, BOUND)


class TestConcurrency:
    """Executors started and stopped from many threads at once leak nothing."""

    def test_eight_threads_twenty_cycles(self, mark: str) -> None:
        """8 threads x 20 start/stop cycles, each thread with its own executor."""
        errors: list[BaseException] = []

        def cycles() -> None:
            executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}, stop_timeout=5)
            try:
                for _ in range(20):
                    executor.start()
                    executor.stop()
                assert executor.state is State.STOPPED
            except BaseException as error:
                errors.append(error)
                executor.kill()

        threads = [threading.Thread(target=cycles) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert alive_with(mark) == []

    def test_shared_executor(self, mark: str) -> None:
        """Threads racing start() and stop() on one executor leave it consistent."""
        executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}, stop_timeout=5)
        errors: list[BaseException] = []

        def race() -> None:
            try:
                for _ in range(10):
                    executor.start()
                    executor.stop()
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=race) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        executor.stop()
        assert errors == []
        assert executor.process is None
        assert alive_with(mark) == []


class TestOnlyOurOwn:
    """Only processes carrying exactly our token are signalled."""

    def test_stop_spares_a_lookalike(self, mark: str) -> None:
        """A process whose marker merely starts with our token survives our stop()."""
        executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}).start()
        decoy = subprocess.Popen(
            ["sleep", "60"], env={**os.environ, ENV_UUID: executor._uuid + "0", MARK: mark}
        )
        try:
            executor.stop()
            assert [p.pid for p in alive_with(mark)] == [decoy.pid]
        finally:
            decoy.kill()
            decoy.wait(BOUND)

    def test_exit_cleanup_spares_other_sessions(self, mark: str) -> None:
        """cleanup_subprocesses() spares a process whose marker contains our PID."""
        body = """
import os, subprocess, sys
from mirakuru.base import SimpleExecutor, cleanup_subprocesses
mark = os.environ["FAULT_MARK_VALUE"]
SimpleExecutor(["sleep", "60"], envvars={"MIRAKURU_FAULT_MARK": mark}).start()
env = {**os.environ, "mirakuru_uuid": f"1{os.getpid()}:other", "MIRAKURU_FAULT_MARK": mark}
decoy = subprocess.Popen(["sleep", "60"], env=env)
cleanup_subprocesses()
print(decoy.poll() is None, flush=True)
decoy.kill()
decoy.wait()
"""
        owner = run_driver(body, mark)
        out, err = owner.communicate(timeout=BOUND)
        assert (out, err) == ("True\n", "")
        assert alive_with(mark) == []


def test_programs_use_this_interpreter() -> None:
    """The fault programs run under the interpreter running the tests."""
    assert programs.stubborn_tree()[0] == sys.executable


class TestStragglers:
    """Descendants outliving their leader get a short grace; a stubborn leader the full one."""

    def test_stubborn_leader_gets_the_full_grace(self, mark: str) -> None:
        """A leader ignoring SIGTERM is waited on for all of stop_timeout, as published."""
        executor, words = started(programs.stubborn_tree(1, 1), mark, stop_timeout=1.0)
        executor.stop()
        report = executor.last_stop
        assert report is not None
        assert report.escalated
        assert int(words[1]) in report.ignored
        assert report.duration >= 1.0  # the grace deadline, never cut short
        assert alive_with(mark) == []

    def test_orphans_get_the_straggler_grace(self, mark: str) -> None:
        """The leader exits on SIGTERM; its stubborn children are killed after 0.5 s, not 30."""
        code = (
            "import os, signal\n"
            "r, w = os.pipe()\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "        os.close(r); os.write(w, b'x'); signal.pause()\n"
            "os.close(w)\n"
            "got = 0\n"
            "while got < 3:\n"
            "    got += len(os.read(r, 64))\n"
            "print('ready', os.getpid(), flush=True)\n"
            "signal.pause()\n"
        )
        executor, words = started([sys.executable, "-c", code], mark, stop_timeout=30)
        executor.stop()
        report = executor.last_stop
        assert report is not None
        assert report.escalated
        assert len(report.ignored) == 3
        assert int(words[1]) not in report.ignored
        assert report.duration < 30
        assert alive_with(mark) == []
