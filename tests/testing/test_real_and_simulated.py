"""One real start and its simulation, side by side: the kit predicts what start() does.

Each test starts a real process, learns from it when it really became ready (or exited),
then simulates the same executor with those instants and compares. The child notes the
moment it began to listen on the monotonic clock (system-wide, so comparable with ours):
its interpreter's start-up jitter is thereby measured, not guessed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mirakuru import (
    LeftNothingRunning,
    OutputExecutor,
    ProcessExitedWithError,
    TCPExecutor,
    TimeoutExpired,
)
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
    """A TCPExecutor that notes when each check of its real wait begins (the callback
    the wait engine's blocking driver calls once per check)."""

    def wait_for(self, wait_for: Callable[[], bool]) -> CountingTCP:
        self.checked_at: list[float] = []

        def counted() -> bool:
            self.checked_at.append(time.monotonic())
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
        """A TCP server that listens after ``delay``: the real checks follow the simulated
        schedule, and their count is the simulated one once the real turns' lateness is
        taken into account.

        ``sleep=0.016`` pins the schedule: its cap is a quarter of it, 4 ms, for any check
        whose wake-up costs under 625 us of CPU (at the default ``sleep`` the cap follows
        the CPU cost measured on the spot, which a loaded machine raises).

        A simulated wait ends exactly on time; a real one a little late (timer slack, a
        thread waking on a shared vCPU), and its check takes a little time: 0.1-0.2 ms a
        turn on these 2-vCPU VMs when quiet, several ms when the CPUs are oversubscribed.
        So the real count falls short of the plain simulation (5-30 % measured), never
        exceeds it by more than one, and its quickest settled pause is the simulated
        4 ms. Given the measured mean lateness as each check's duration, the simulation
        makes the real count within a fifth, plus two, when quiet (a third plus three is
        asserted): the lateness is not the same for every turn (a stall of one turn of
        20 ms is spread evenly by the mean), and the few turns of the ramp are not settled.
        """
        mark = tmp_path / "listening"
        port = free_port()
        command = [*python_command(SERVER), str(delay), str(port), str(mark)]
        executor = CountingTCP(command, host="127.0.0.1", port=port, timeout=10, sleep=0.016)
        with executor:
            armed = _armed_at(executor, 10)
            listened = float(mark.read_text()) - armed
        real = len(executor.checked_at)
        pauses = [b - a for a, b in zip(executor.checked_at, executor.checked_at[1:], strict=False)]
        settled = pauses[5:]  # from 1 ms, growing by half, the pause reaches 4 ms by the 5th

        plain = simulate_start(executor, ready_after=listened)
        assert plain.outcome == "ready"
        assert listened <= plain.returned_at <= listened + 0.004 + 1e-9
        assert real <= plain.checks + 1
        assert 0.0039 <= min(settled) < 0.006

        lateness = max(0.0, statistics.mean(settled) - 0.004)
        late = simulate_start(
            executor, ready_after=listened, check_duration=lateness, check_cpu=0.0
        )
        # Within a fifth plus two on a quiet machine; a third plus three keeps the test
        # honest (a count off by the wrong schedule is off by half or more) when other
        # tests run beside it on two vCPUs and single turns stall for tens of ms.
        assert abs(late.checks - real) <= 3 + late.checks // 3
        # Simulated after the real start: from where the executor is now.
        assert lifecycle_path(late) == "stopped → starting → running"


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

    def test_exit_zero_leaving_nothing(self) -> None:
        """A polled service that exits 0 and leaves nothing: both fail at once, noted alike
        (the real note names the PID, which a simulation cannot know)."""
        code = "import time; time.sleep(0.1)"
        executor = TCPExecutor(python_command(code), host="127.0.0.1", port=free_port())
        simulated = simulate_start(executor, ready_after=None, exits_after=0.1)
        with pytest.raises(LeftNothingRunning):
            executor.start()
        assert simulated.outcome == "exited"
        assert simulated.returned_at == pytest.approx(0.1, abs=0.01)
        pid = str(executor.history[1].detail).split()[1]
        assert [
            str(change).replace("the process", f"PID {pid}") for change in simulated.history
        ] == [str(change) for change in executor.history]
