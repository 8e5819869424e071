"""One real start and its simulation, side by side: the kit predicts what start() does.

Each test starts a real process, learns from it when it really became ready (or exited),
then simulates the same executor with those instants and compares. The child notes the
moment it began to listen on the monotonic clock (system-wide, so comparable with ours):
its interpreter's start-up jitter is thereby measured, not guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import OutputExecutor, ProcessExitedWithError, TCPExecutor, TimeoutExpired
from mirakuru.ports import free_port
from mirakuru.testing import assert_lifecycle, lifecycle_path, simulate_start
from tests.helpers import python_command

#: Listens after a delay, writes when it began listening (atomically), then accepts.
SERVER = """
import os, socket, sys, time
delay, port, mark = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
time.sleep(delay)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen()
began = time.monotonic()
with open(mark + ".tmp", "w") as note:
    note.write(repr(began))
os.rename(mark + ".tmp", mark)
while True:
    server.accept()[0].close()
"""


class CountingTCP(TCPExecutor):
    """A TCPExecutor that counts the checks its real wait makes (the callback the wait
    engine's blocking driver calls once per check)."""

    checks = 0

    def wait_for(self, wait_for: Callable[[], bool]) -> CountingTCP:
        def counted() -> bool:
            self.checks += 1
            return wait_for()

        return super().wait_for(counted)


def _armed_at(executor: TCPExecutor | OutputExecutor, timeout: float) -> float:
    """The monotonic reading at which start() armed its deadline."""
    budget = executor._budget
    assert budget is not None
    assert budget.deadline is not None
    return budget.deadline - timeout


class TestChecks:
    """A simulated start makes as many checks as the real driver makes on the same schedule."""

    @pytest.mark.parametrize("delay", [0.1, 0.3])
    def test_tcp_start(self, tmp_path: Path, delay: float) -> None:
        """A TCP server that listens after ``delay``: real and simulated check counts agree.

        ``sleep=0.016`` pins the schedule: its cap is a quarter of it, 4 ms, for any check
        whose wake-up costs under 625 us of CPU. (At the default ``sleep`` the real cap
        follows the CPU cost measured on the spot, 4 ms below 100 us and more on a busy
        machine; the simulation takes that cost as ``check_cost``, 0 unless given.)

        The real count may be lower, never more than one higher: the simulation's waits
        end exactly on time and its checks take no time, while each real turn also pays
        the waiting thread's wake-up (timer slack, a shared vCPU) and the connect: 0.3 to
        0.8 ms per 4 ms turn measured on these 2-vCPU VMs under a load of 5-7, real/sim
        0.85-0.95. The tolerance (a quarter, plus two) covers that; a schedule twice as
        slow or any faster would fall outside it.
        """
        mark = tmp_path / "listening"
        port = free_port()
        command = [*python_command(SERVER), str(delay), str(port), str(mark)]
        executor = CountingTCP(command, host="127.0.0.1", port=port, timeout=10, sleep=0.016)
        with executor:
            armed = _armed_at(executor, 10)
            returned = time.monotonic() - armed
            listened = float(mark.read_text()) - armed
        simulated = simulate_start(executor, ready_after=listened)
        assert simulated.outcome == "ready"
        real = executor.checks
        assert simulated.checks * 3 // 4 - 2 <= real <= simulated.checks + 1
        # Both grids of checks run at 4 ms once settled: each sees the port within one.
        assert listened <= simulated.returned_at <= listened + 0.004 + 1e-9
        assert returned >= listened
        # Simulated after the real start: from where the executor is now.
        assert lifecycle_path(simulated) == "stopped → starting → running"


class TestOutcomes:
    """The simulated outcome and history are the real ones."""

    def test_timeout(self) -> None:
        """Never ready: both time out at the deadline and record the same failure."""
        executor = TCPExecutor(
            ["sleep", "30"], host="127.0.0.1", port=free_port(), timeout=0.3, sleep=0.05
        )
        simulated = simulate_start(executor, ready_after=None)
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert simulated.outcome == "timed_out"
        assert simulated.returned_at == pytest.approx(0.3)
        assert_lifecycle(executor, "idle → starting → failed")
        assert_lifecycle(simulated, "idle → starting → failed")
        assert simulated.history[-1].detail == executor.history[-1].detail

    def test_early_exit(self) -> None:
        """A process that dies with code 3 fails both starts, seen at once, noted alike."""
        code = "import time; time.sleep(0.1); raise SystemExit(3)"
        executor = TCPExecutor(python_command(code), host="127.0.0.1", port=free_port())
        simulated = simulate_start(executor, ready_after=None, exits_after=0.1, exit_code=3)
        with pytest.raises(ProcessExitedWithError):
            executor.start()
        assert simulated.outcome == "exited"
        assert simulated.exit_code == 3
        assert [str(change) for change in simulated.history] == [
            str(change) for change in executor.history
        ]

    def test_banner(self) -> None:
        """A banner: both ready, with the same history path, the simulation within 1 ms."""
        code = "import time; time.sleep(0.1); print('up', flush=True); time.sleep(30)"
        executor = OutputExecutor(python_command(code), banner="^up$", timeout=10)
        simulated = simulate_start(executor, ready_after=0.1)
        with executor:
            pass
        assert simulated.outcome == "ready"
        assert simulated.returned_at - 0.1 <= 0.001 + 1e-9
        assert_lifecycle(executor, "idle → starting → running → stopping → stopped")
        assert_lifecycle(simulated, "idle → starting → running")

    def test_output_ended(self) -> None:
        """Output ending (exit 0) before the banner: both fail with the same note."""
        code = "import time; time.sleep(0.1)"
        executor = OutputExecutor(python_command(code), banner="^up$", timeout=10)
        simulated = simulate_start(executor, ready_after=None, exits_after=0.1)
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert simulated.outcome == "exited"
        assert [str(change) for change in simulated.history] == [
            str(change) for change in executor.history
        ]
