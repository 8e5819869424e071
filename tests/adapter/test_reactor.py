"""The reactor and the Run against real processes: descriptors, threads, fork, stop()."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import threading
import warnings

import pytest

from mirakuru import probes
from mirakuru.adapter.readiness.notify import NotifySocket
from mirakuru.adapter.run.reactor import Reactor, reactor
from mirakuru.adapter.spawn import identity
from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core.lifecycle import ListenerFailed, State, StateChange
from mirakuru.exceptions import ExecutorError
from tests.base.programs import sleeper
from tests.helpers import marked_processes, python_command, wait_until

#: A safety bound for joins and waits; never a timing target.
BOUND = 30.0
#: The executor's own descriptors (stdin, stdout, pidfd); the watchdog holds its copy of
#: the pidfd in its own process, so it costs this one nothing.
FDS_PER_EXECUTOR = 3
#: Shared, not per executor: the cgroup thread's cgroup.procs while a move is in flight.
#: (A SimpleExecutor's move also holds a pidfd until it landed: counted once they have.)
FDS_IN_FLIGHT = 1


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
class TestResources:
    """Many running executors share one thread and hold a few descriptors each."""

    def test_hundred_executors(self) -> None:
        """100 running executors: bounded fds each, no thread beyond the one reactor."""
        SimpleExecutor(sleeper()).start().stop()  # the reactor and imports exist from here on
        fds, threads = _open_fds(), threading.active_count()
        banner = python_command("print('up', flush=True)\nimport time\ntime.sleep(60)")
        executors: list[SimpleExecutor] = []
        try:
            for number in range(100):
                if number % 2:
                    executors.append(SimpleExecutor(sleeper()).start())
                else:
                    executors.append(Executor(banner, ready=probes.banner("up")).start())
            for executor in executors:
                pinned = identity.of(executor.process) if executor.process else None
                if pinned is not None and pinned.group is not None:
                    assert pinned.group.settle(BOUND)
            assert _open_fds() - fds <= FDS_PER_EXECUTOR * 100 + FDS_IN_FLIGHT
            assert threading.active_count() - threads <= 0
        finally:
            for executor in executors:
                executor.stop()
        assert _open_fds() == fds  # a stopped executor holds no descriptor, even before GC
        assert all(not marked_processes(executor) for executor in executors)

    def test_one_reactor_thread(self) -> None:
        """Ready executors are served by the same daemon thread."""
        banner = python_command("print('up', flush=True)\nimport time\ntime.sleep(60)")
        with Executor(banner, ready=probes.banner("up")):
            thread = reactor().thread
            assert thread is not None
            assert thread.daemon
            assert thread.is_alive()
            names = [t.name for t in threading.enumerate()]
            assert names.count("mirakuru-reactor") == 1

    def test_few_wakeups_per_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A start wakes the reactor's thread once for all its descriptors; a stop, which
        takes them back, not at all (each wake-up is a thread switch and the GIL)."""
        SimpleExecutor(sleeper()).start().stop()
        wakes: list[str] = []
        real_wake = Reactor._wake

        def counted(self: Reactor) -> None:
            wakes.append(phase)
            real_wake(self)

        monkeypatch.setattr(Reactor, "_wake", counted)
        phase = "start"
        executor = SimpleExecutor(sleeper()).start()
        phase = "stop"
        executor.stop()
        assert wakes.count("start") == 1
        assert wakes.count("stop") == 0


class TestStopDuringStart:
    """stop() or kill() from another thread ends a waiting start()."""

    @pytest.mark.parametrize("how", ["stop", "kill"])
    def test_cut_short(self, how: str) -> None:
        """start() raises ExecutorError saying it was stopped; nothing is left running."""
        executor = Executor(sleeper(), ready=probes.banner("never"), timeout=3600)
        errors: list[BaseException] = []

        def start() -> None:
            try:
                executor.start()
            except BaseException as error:
                errors.append(error)

        starter = threading.Thread(target=start)
        starter.start()
        assert wait_until(lambda: executor.state is State.STARTING and executor.running())
        stopper = threading.Thread(target=getattr(executor, how))
        stopper.start()
        stopper.join(BOUND)
        assert not stopper.is_alive()  # returned well before the safety bound
        starter.join(BOUND)
        assert not starter.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], ExecutorError)
        assert "stopped" in str(errors[0].args)
        assert executor.state is State.FAILED
        assert not executor.running()
        assert wait_until(lambda: not marked_processes(executor))


class TestUnexpectedExit:
    """A running service that exits on its own is noticed through the reactor."""

    def test_failed_with_code(self) -> None:
        """The state moves to failed, and the listener's change names the exit code."""
        heard: list[StateChange] = []
        script = "import sys\nprint('up', flush=True)\nsys.stdin.readline()\nsys.exit(3)"
        executor = Executor(python_command(script), ready=probes.banner("up"))
        executor.add_listener(heard.append).start()
        process = executor.process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        assert wait_until(lambda: executor.state is State.FAILED)
        assert heard[-1].dest is State.FAILED
        assert heard[-1].detail is not None
        assert "3" in heard[-1].detail
        with pytest.raises(ExecutorError):  # as published: stop() reports the exit code
            executor.stop()
        assert not marked_processes(executor)


class TestListenerErrors:
    """A listener that raises is reported as a warning; the executor carries on."""

    def test_warns(self) -> None:
        """Each failed call is a ListenerFailed warning naming the error."""

        def broken(change: StateChange) -> None:
            raise RuntimeError("listener bug")

        executor = SimpleExecutor(sleeper()).add_listener(broken)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            executor.start().stop()
        failures = [w for w in caught if issubclass(w.category, ListenerFailed)]
        assert len(failures) == 4  # start, ready, stop, finish
        assert "listener bug" in str(failures[0].message)
        assert executor.state is State.STOPPED


class TestOutputLimit:
    """output_limit keeps the head for output() and always the tail; history says so."""

    def test_head_and_tail(self) -> None:
        """Beyond the limit output is left out, the last lines are still known."""
        script = "for n in range(20000):\n    print(f'line {n}')\nprint('last line', flush=True)"
        executor = SimpleExecutor(python_command(script), output_limit=1000)
        executor.start()
        process = executor.process
        assert process is not None
        process.wait(BOUND)
        executor.stop()
        stream = executor.output()
        assert stream is not None
        head = stream.read()
        assert head.startswith("line 0\n")
        assert len(head.encode()) == 1000
        assert executor.output_tail()[-1] == "[stdout] last line"
        notes = [c.detail or "" for c in executor.history]
        assert any("output_limit" in note for note in notes)

    def test_bad_limit(self) -> None:
        """A limit that is not a positive number is refused at construction."""
        with pytest.raises((TypeError, ValueError)):
            SimpleExecutor(sleeper(), output_limit=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
class TestFork:
    """A forked child makes its own reactor; the parent's is untouched."""

    def test_child_has_its_own(self) -> None:
        """The child starts and stops an executor on a fresh reactor thread."""
        banner = python_command("print('up', flush=True)\nimport time\ntime.sleep(60)")
        with Executor(banner, ready=probes.banner("up")) as parent_executor:
            parent_reactor = reactor()
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through its exit code
                code = 1
                try:
                    mine = reactor()
                    child = Executor(banner, ready=probes.banner("up")).start()
                    ok = mine is not parent_reactor and mine.thread is not None
                    child.stop()
                    code = 0 if ok and not child.running() else 2
                finally:
                    os.write(write, bytes([code]))
                    os._exit(code)
            os.close(write)
            with os.fdopen(read, "rb") as answer:
                reported = answer.read(1)
            _, status = os.waitpid(pid, 0)
            assert reported == bytes([0])
            assert os.waitstatus_to_exitcode(status) == 0
            assert reactor() is parent_reactor
            assert parent_executor.running()


def test_fd_limit_256() -> None:
    """Under ``ulimit -n 256``, 50 executors start and stop."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "from mirakuru import SimpleExecutor\n"
        "executors = [SimpleExecutor(['sleep', '60']).start() for _ in range(50)]\n"
        "for e in executors: e.stop()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=BOUND, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


class TestFallbacks:
    """Without pidfds or abstract sockets the same behaviour comes from the fallbacks."""

    def test_exit_noticed_without_pidfd(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no pidfd, the reactor polls the child and still notices the exit."""
        monkeypatch.setattr("mirakuru.adapter.run.run.open_pidfd", lambda pid: None)
        executor = SimpleExecutor(["sh", "-c", "read line; exit 4"]).start()
        assert executor._pidfd is None
        process = executor.process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        assert wait_until(lambda: executor.state is State.FAILED)
        with pytest.raises(ExecutorError):
            executor.stop()

    def test_notify_socket_file(self) -> None:
        """A filesystem notify socket works like the abstract one and is removed on close."""
        import socket

        notify = NotifySocket(abstract=False)
        path = notify.address
        assert not path.startswith("@")
        assert os.path.exists(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"STATUS=warming up\nREADY=1", path)
        assert wait_until(lambda: notify.on_readable() and notify.ready)
        assert notify.statuses == ["warming up"]
        notify.close()
        assert not os.path.exists(os.path.dirname(path))


class _BlockedCheck(Executor):
    """An executor whose readiness check blocks until the test releases it."""

    def __init__(
        self, command: list[str], released: threading.Event, ready: probes.Probe | None = None
    ) -> None:
        super().__init__(command, timeout=BOUND, ready=ready)
        self.released = released
        self.checks = 0

    def pre_start_check(self) -> bool:
        return False

    def after_start_check(self) -> bool:
        self.checks += 1
        released = self.released.wait(BOUND)
        return super().after_start_check() if self.ready is not None else released


class TestServedDuringStart:
    """While start() waits, the reactor serves the run's descriptors, not the waiter."""

    def test_output_drained_while_the_check_blocks(self, tmp_path: pathlib.Path) -> None:
        """A child printing 4 MiB (more than a pipe holds) finishes while the check is blocked."""
        done = os.path.join(str(tmp_path), "done")
        script = (
            "import sys\n"
            "sys.stdout.write(('x' * 1023 + '\\n') * 4096)\n"
            "sys.stdout.flush()\n"
            f"open({done!r}, 'w').close()\n"
            "import time\n"
            "time.sleep(60)\n"
        )
        released = threading.Event()
        executor = _BlockedCheck(python_command(script), released)
        starter = threading.Thread(target=executor.start)
        starter.start()
        try:
            assert wait_until(lambda: os.path.exists(done), BOUND)
            assert executor.checks == 1  # nobody but the reactor could have read the pipe
        finally:
            released.set()
            starter.join(BOUND)
        assert executor.state is State.RUNNING
        stream = executor.output()
        assert stream is not None
        assert len(stream.read(4 << 20)) == 4 << 20
        executor.stop()
        assert not marked_processes(executor)

    def test_notify_status_while_the_check_blocks(self) -> None:
        """sd_notify STATUS= lines reach the history while the waiting thread is busy."""
        script = (
            "import os, socket, time\n"
            "address = os.environ['NOTIFY_SOCKET']\n"
            "address = '\\0' + address[1:] if address.startswith('@') else address\n"
            "with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:\n"
            "    s.sendto(b'STATUS=warming up', address)\n"
            "    time.sleep(60)\n"
        )
        released = threading.Event()
        executor = _BlockedCheck(python_command(script), released, ready=probes.sd_notify())
        starter = threading.Thread(target=lambda: _start_quietly(executor))
        starter.start()
        try:
            assert wait_until(
                lambda: any(c.detail == "STATUS=warming up" for c in executor.history), BOUND
            )
            assert executor.checks == 1
            assert executor.state is State.STARTING
        finally:
            released.set()
            executor.stop()
            starter.join(BOUND)
        assert not starter.is_alive()
        assert not marked_processes(executor)


def _start_quietly(executor: Executor) -> None:
    with contextlib.suppress(ExecutorError):  # the test stops it from outside: start() says so
        executor.start()
