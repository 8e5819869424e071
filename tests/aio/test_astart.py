"""astart(), astop(), akill() and ``async with``: what the blocking methods do, awaited."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from mirakuru import (
    AlreadyRunning,
    Executor,
    ExecutorError,
    HTTPExecutor,
    OutputEnded,
    PidExecutor,
    ProcessExitedWithError,
    ProcessFinishedWithError,
    SimpleExecutor,
    State,
    StateChange,
    TCPExecutor,
    TimeoutExpired,
    UnixSocketExecutor,
    probes,
)
from tests.aio.programs import banner_after, ignores_term, listens_after, state
from tests.helpers import free_port, marked_processes, python_command

pytestmark = pytest.mark.anyio

PATHS = [State.IDLE, State.STARTING, State.RUNNING, State.STOPPING, State.STOPPED]


def path_of(history: tuple[StateChange, ...]) -> list[State]:
    """The states an executor went through, from its history."""
    return [history[0].source, *(change.dest for change in history)] if history else []


class TestLikeTheBlockingMethods:
    """Same return values, lifecycle and history as start() and stop()."""

    async def test_banner(self) -> None:
        """astart() returns the executor once the banner is printed; astop() stops it."""
        executor = Executor(banner_after(0.1), ready=probes.banner("^ready$"), timeout=30)
        assert await executor.astart() is executor
        assert state(executor) is State.RUNNING
        assert executor.running()
        assert await executor.astop() is executor
        assert state(executor) is State.STOPPED
        assert path_of(executor.history) == PATHS
        assert not marked_processes(executor)

    async def test_async_with(self) -> None:
        """``async with`` starts the executor and stops it on the way out, even on error."""
        executor = Executor(banner_after(0.05), ready=probes.banner("^ready$"), timeout=30)
        entered: list[Executor] = []

        async def body() -> None:
            async with executor as started:
                entered.append(started)
                assert state(executor) is State.RUNNING
                raise LookupError("the body failed")

        with pytest.raises(LookupError):
            await body()
        assert entered == [executor]
        assert state(executor) is State.STOPPED
        assert not marked_processes(executor)

    async def test_tcp(self) -> None:
        """A polled probe (TCP) becomes ready while awaited."""
        port = free_port()
        executor = TCPExecutor(listens_after(0.2, port), host="127.0.0.1", port=port, timeout=30)
        async with executor:
            assert state(executor) is State.RUNNING
        assert state(executor) is State.STOPPED

    async def test_http(self) -> None:
        """HTTP readiness (a request in a worker thread) while awaited."""
        port = free_port()
        command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        executor = HTTPExecutor(command, url=f"http://127.0.0.1:{port}/", timeout=30)
        async with executor:
            assert state(executor) is State.RUNNING

    async def test_pid_file_and_unix_socket(self, tmp_path: Path) -> None:
        """A pid file and a unix socket (watched directories) are awaited."""
        pid = tmp_path / "service.pid"
        sock = tmp_path / "service.sock"
        pid_executor = PidExecutor(
            python_command(
                f"import time\ntime.sleep(0.1)\nopen({str(pid)!r}, 'w').close()\ntime.sleep(60)"
            ),
            filename=str(pid),
            timeout=30,
        )
        unix_executor = UnixSocketExecutor(
            python_command(
                "import socket, time\ntime.sleep(0.1)\n"
                f"s = socket.socket(socket.AF_UNIX)\ns.bind({str(sock)!r})\ns.listen()\n"
                "time.sleep(60)"
            ),
            socket_name=str(sock),
            timeout=30,
        )
        async with pid_executor, unix_executor:
            assert state(pid_executor) is state(unix_executor) is State.RUNNING

    async def test_sd_notify(self) -> None:
        """sd_notify readiness (the reactor serves the notify socket) is awaited."""
        source = (
            "import os, socket, time\ntime.sleep(0.1)\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "address = os.environ['NOTIFY_SOCKET']\n"
            "address = '\\0' + address[1:] if address.startswith('@') else address\n"
            "s.sendto(b'READY=1', address)\ntime.sleep(60)"
        )
        executor = Executor(python_command(source), ready=probes.sd_notify(), timeout=30)
        async with executor:
            assert state(executor) is State.RUNNING

    async def test_simple_executor(self) -> None:
        """A SimpleExecutor is spawned off the loop and running when astart() returns."""
        executor = SimpleExecutor(["sleep", "60"])
        await executor.astart()
        assert executor.running()
        assert state(executor) is State.RUNNING
        assert await executor.akill() is executor
        assert state(executor) is State.STOPPED
        assert not marked_processes(executor)

    async def test_listeners_see_every_change(self) -> None:
        """Listeners hear the same changes, in the same order, as for start()/stop()."""
        heard: list[StateChange] = []
        executor = Executor(banner_after(0.0), ready=probes.banner("ready"), timeout=30)
        executor.add_listener(heard.append)
        async with executor:
            pass
        assert heard == list(executor.history)
        assert path_of(tuple(heard)) == PATHS

    async def test_astart_of_a_running_executor(self) -> None:
        """astart() of a running executor returns at once, as start() does."""
        async with Executor(banner_after(0.0), ready=probes.banner("ready"), timeout=30) as ex:
            pid = ex.process.pid if ex.process else None
            assert await ex.astart() is ex
            assert ex.process is not None
            assert ex.process.pid == pid

    async def test_astop_kill_signal_and_expected_code(self) -> None:
        """astop() takes stop()'s arguments: a signal and the exit code it expects."""
        executor = Executor(banner_after(0.0), ready=probes.banner("ready"), timeout=30)
        await executor.astart()
        await executor.astop(signal.SIGINT, expected_returncode=-signal.SIGINT)
        assert state(executor) is State.STOPPED


class TestErrors:
    """The same exceptions as the blocking start(), and nothing left running."""

    async def test_timeout(self) -> None:
        """A service never ready raises TimeoutExpired at the deadline, and is killed."""
        executor = Executor(banner_after(60), ready=probes.banner("never"), timeout=0.3)
        with pytest.raises(TimeoutExpired):
            await executor.astart()
        assert state(executor) is State.FAILED
        assert not marked_processes(executor)

    async def test_exit_with_error(self) -> None:
        """A process dying with an error raises ProcessExitedWithError at once."""
        ready = probes.tcp("127.0.0.1", free_port())
        executor = Executor(python_command("raise SystemExit(3)"), ready=ready, timeout=30)
        with pytest.raises(ProcessExitedWithError) as caught:
            await executor.astart()
        assert caught.value.exit_code == 3
        assert state(executor) is State.FAILED

    async def test_output_ended(self) -> None:
        """Output closed without the banner raises OutputEnded."""
        command = python_command("import os, time\nos.close(1)\ntime.sleep(60)")
        executor = Executor(command, ready=probes.banner("never"), timeout=30)
        with pytest.raises(OutputEnded):
            await executor.astart()
        assert state(executor) is State.FAILED
        assert not marked_processes(executor)

    async def test_already_running(self) -> None:
        """A port already answering raises AlreadyRunning before anything is spawned."""
        port = free_port()
        async with TCPExecutor(listens_after(0, port), host="127.0.0.1", port=port, timeout=30):
            second = TCPExecutor(["sleep", "60"], host="127.0.0.1", port=port, timeout=30)
            with pytest.raises(AlreadyRunning):
                await second.astart()
            assert second.process is None

    async def test_no_readiness_check(self) -> None:
        """An Executor without a probe raises NotImplementedError before spawning."""
        executor = Executor(["sleep", "60"])
        with pytest.raises(NotImplementedError):
            await executor.astart()
        assert executor.process is None

    async def test_finished_with_error(self) -> None:
        """astop() raises ProcessFinishedWithError for an unexpected exit code."""
        command = python_command(
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
            "print('ready', flush=True)\ntime.sleep(60)"
        )
        executor = Executor(command, ready=probes.banner("ready"), timeout=30)
        await executor.astart()
        with pytest.raises(ProcessFinishedWithError):
            await executor.astop()
        assert state(executor) is State.FAILED

    async def test_akill_of_a_term_ignoring_service(self) -> None:
        """akill() ends a process that ignores SIGTERM, and waits for it."""
        executor = Executor(ignores_term(), ready=probes.banner("ready"), timeout=30)
        await executor.astart()
        await executor.akill()
        assert state(executor) is State.STOPPED
        assert not marked_processes(executor)


class TestConcurrentStop:
    """A stop from another task cuts an awaited start short, as from another thread."""

    async def test_astop_from_another_task(self) -> None:
        """astop() while astart() waits: astart() raises, nothing is left running."""
        executor = Executor(banner_after(60), ready=probes.banner("never"), timeout=60)
        errors: list[BaseException] = []

        async def start() -> None:
            try:
                await executor.astart()
            except Exception as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            group.start_soon(start)
            with anyio.fail_after(10):
                while executor.state is not State.STARTING or executor.process is None:
                    await anyio.sleep(0.005)
            await executor.astop()
        assert len(errors) == 1
        assert type(errors[0]) is ExecutorError
        assert "stopped" in (executor.history[-1].detail or "")
        assert state(executor) is State.FAILED
        assert not marked_processes(executor)

    async def test_blocking_start_waits_for_the_awaited_one(self) -> None:
        """A blocking start() from a thread during astart() waits for it and shares it."""
        executor = Executor(banner_after(0.3), ready=probes.banner("ready"), timeout=30)
        async with anyio.create_task_group() as group:
            group.start_soon(executor.astart)
            with anyio.fail_after(10):
                while executor.process is None:
                    await anyio.sleep(0.005)
            pid = executor.process.pid
            await anyio.to_thread.run_sync(executor.start)
            assert executor.process is not None
            assert executor.process.pid == pid
        assert state(executor) is State.RUNNING
        await executor.astop()


async def test_without_a_process_group_leader_exit(tmp_path: Path) -> None:
    """An exit code 0 during start (a daemonizing launcher) is tolerated, as in start()."""
    marker = tmp_path / "up"
    command = python_command(
        "import os, sys, time\n"
        "if os.fork():\n    sys.exit(0)\n"
        f"time.sleep(0.2)\nopen({str(marker)!r}, 'w').close()\ntime.sleep(60)"
    )
    executor = Executor(command, ready=probes.pid_file(str(marker)), timeout=30)
    await executor.astart()
    assert state(executor) is State.RUNNING
    await executor.astop()
    assert not os.path.exists(marker) or not marked_processes(executor)
