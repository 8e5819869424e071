"""Infinite and huge time limits mean "no limit": the service still gets its stop signal."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru import OutputExecutor, TCPExecutor
from mirakuru.adapter.teardown import tree
from mirakuru.adapter.teardown.stopping import StartGate
from mirakuru.core.budget import FOREVER, Budget, Timeouts
from mirakuru.core.lifecycle import State
from mirakuru.ports import free_port
from tests.cli.support import run_cli
from tests.faults.conftest import MARK
from tests.helpers import python_command

#: Bound for every wait in these tests; never a timing target.
BOUND = 30.0

HUGE = [math.inf, 1e300, 1e10, FOREVER]


def polite_service(flag: Path) -> list[str]:
    """Prints ``up``; on SIGTERM writes ``flag`` and exits 0 (its clean shutdown)."""
    return python_command(
        "import signal, sys, time\n"
        "def bye(*_):\n"
        f"    open({str(flag)!r}, 'w').write('clean')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )


class TestCore:
    """The budget reads huge limits as no deadline at all."""

    @given(st.floats(min_value=FOREVER, allow_nan=False), st.floats(-1e6, 1e6))
    def test_huge_start_timeout_is_unbounded(self, timeout: float, now: float) -> None:
        """A start-up budget of FOREVER seconds or more never expires."""
        budget = Budget.starting_at(now, timeout)
        assert budget.deadline is None
        assert not budget.expired(now + 1e12)

    def test_huge_child_budget_keeps_parent(self) -> None:
        """A huge sub-budget is bounded by its parent alone."""
        parent = Budget.starting_at(0.0, 5.0)
        assert parent.child(1e300, 1.0) == parent


class TestStopGrace:
    """stop() with a huge grace sends SIGTERM and lets the service shut down cleanly."""

    @pytest.mark.parametrize("limit", HUGE, ids=str)
    @pytest.mark.parametrize("which", ["timeout", "stop_timeout"])
    def test_clean_shutdown(self, tmp_path: Path, mark: str, limit: float, which: str) -> None:
        """The service gets SIGTERM, runs its shutdown, and the state ends ``stopped``."""
        flag = tmp_path / "flag"
        executor = OutputExecutor(
            polite_service(flag),
            banner="^up$",
            envvars={MARK: mark},
            **{which: limit},
        )
        if which == "stop_timeout":
            executor._timeout = BOUND  # the start itself stays bounded
        executor.start()
        executor.stop()
        assert executor.state is State.STOPPED, executor.history
        assert executor.history[-1].detail == "exit code 0"
        assert flag.read_text() == "clean"
        assert executor.last_stop is not None
        assert not executor.last_stop.escalated

    def test_members_waited_without_limit(self) -> None:
        """wait_gone() with an infinite limit returns as soon as nothing is left to wait for."""
        assert tree.wait_gone([], math.inf) == []


class TestStartWithoutLimit:
    """A start() with a huge timeout waits for a concurrent one without overflowing."""

    @pytest.mark.parametrize("limit", HUGE, ids=str)
    def test_waiting_for_another_start(self, limit: float) -> None:
        """The second start()'s wait for the first takes a huge budget as no limit."""
        gate, lock = StartGate(), threading.RLock()
        gate.enter()  # this thread is the one starting
        outcome: list[object] = []

        def second_start() -> None:
            try:
                with lock:
                    gate.wait_for_other(lock, Budget.starting_at(0.0, limit).remaining(0.0))
                outcome.append("waited")
            except BaseException as error:  # recorded for the assertion
                outcome.append(error)

        other = threading.Thread(target=second_start)
        other.start()
        gate.leave()
        other.join(BOUND)
        assert outcome == ["waited"]

    @pytest.mark.parametrize("limit", HUGE, ids=str)
    def test_start_and_stop(self, mark: str, limit: float) -> None:
        """A TCP service starts with a huge timeout and stops cleanly."""
        port = free_port()
        server = python_command(
            "import socket, sys, time\n"
            f"s = socket.create_server(('127.0.0.1', {port}))\n"
            "time.sleep(60)\n"
        )
        executor = TCPExecutor(
            server, host="127.0.0.1", port=port, timeout=limit, envvars={MARK: mark}
        )
        executor.start()
        assert executor.running()
        executor.stop()
        assert executor.state is State.STOPPED


class TestCli:
    """``--stop-timeout inf`` is a stop without a limit, not a traceback."""

    @pytest.mark.parametrize("value", ["inf", "1e300", "1e400"])
    def test_stop_timeout(self, tmp_path: Path, value: str) -> None:
        """The service gets SIGTERM and shuts down cleanly; exit status 0."""
        flag = tmp_path / "flag"
        finished = run_cli(
            "run", "--stop-timeout", value, "--output", "^up$", "--then", "true", "--",
            *polite_service(flag),
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr
        assert "Traceback" not in finished.stderr
        assert flag.read_text() == "clean"

    @pytest.mark.parametrize("value", ["nan", "-inf", "-1", "soon"])
    def test_bad_value_is_an_error(self, value: str) -> None:
        """A value that is not a limit is named in one error line, exit status 2."""
        finished = run_cli("run", f"--stop-timeout={value}", "--", "true")
        assert finished.returncode == 2
        assert "Traceback" not in finished.stderr
        assert value in finished.stderr


def test_timeouts_value_keeps_huge_grace() -> None:
    """The value type keeps what was given; only the waits read it as "no limit"."""
    assert Timeouts(start=1.0, stop=math.inf).grace == math.inf
