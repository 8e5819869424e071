"""SimpleExecutor's child, stopped for its cgroup move on the cgroup thread, is released right.

start() returns while the child is still stopped (SIGSTOP through a pidfd) and the cgroup
thread moves it, then continues it. That pause is ours alone: it must not undo a stop the
caller sends, nor keep other services stopped while one move waits for Popen's lock.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator

import psutil
import pytest

from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.spawn import background, identity
from mirakuru.base import SimpleExecutor
from tests.faults.conftest import MARK
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(
    not (capabilities().cgroup and capabilities().pidfd), reason="needs cgroup v2 and pidfds"
)

#: Safety bound for every wait; never a timing target.
BOUND = 10.0
#: Less than the cgroup thread's longest wait for a held Popen lock (10 s), with room for a
#: loaded machine: a move queued behind such a wait would not have landed by then.
MOVE_BOUND = 5.0


@pytest.fixture
def executors(mark: str) -> Iterator[Callable[[], SimpleExecutor]]:
    """``make()``: a marked SimpleExecutor of a long sleep; each is stopped at the end."""
    made: list[SimpleExecutor] = []

    def make() -> SimpleExecutor:
        executor = SimpleExecutor(["sleep", "60"], envvars={MARK: mark}, timeout=BOUND)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        process = executor.process
        if process is not None and process.returncode is None:
            with_pid = psutil.Process(process.pid)
            with_pid.resume()  # a test that froze it: let the stop signal act
        executor.stop()


def status(executor: SimpleExecutor) -> str:
    assert executor.process is not None
    return str(psutil.Process(executor.process.pid).status())


def settle(executor: SimpleExecutor, timeout: float) -> bool:
    """Whether the executor's cgroup move is done within ``timeout``."""
    assert executor.process is not None
    pinned = identity.of(executor.process)
    assert pinned is not None
    assert pinned.group is not None
    return pinned.group.settle(timeout)


class TestCallersStop:
    def test_a_stop_sent_before_the_move_landed_is_kept(
        self, executors: Callable[[], SimpleExecutor]
    ) -> None:
        """A SIGSTOP the caller sends once start() returned (freezing the service on
        purpose), before the cgroup thread got to the move, still holds once the move
        landed: the SIGCONT that ends our own pause does not undo it."""
        gate = threading.Event()
        background.submit(lambda: gate.wait(BOUND))  # the move waits behind this job
        executor = executors().start()
        assert executor.process is not None
        executor.process.send_signal(signal.SIGSTOP)
        gate.set()
        assert settle(executor, BOUND)
        assert status(executor) == psutil.STATUS_STOPPED
        executor.process.send_signal(signal.SIGCONT)
        assert wait_until(lambda: status(executor) != psutil.STATUS_STOPPED, BOUND)


class TestHeldLock:
    def test_a_move_waiting_for_popens_lock_holds_up_no_other(
        self, executors: Callable[[], SimpleExecutor]
    ) -> None:
        """While a thread waits on one child (holding Popen's lock), a service started next
        is still moved and continued at once, and stopped at once."""
        gate = threading.Event()
        background.submit(lambda: gate.wait(BOUND))  # the cgroup thread is busy for now
        first = executors().start()
        assert first.process is not None
        waiter = threading.Thread(target=first.process.wait, daemon=True)
        waiter.start()
        # Popen's own lock, taken by wait() for as long as the child lives.
        lock = first.process._waitpid_lock  # type: ignore[attr-defined]
        assert wait_until(lock.locked, BOUND)
        second = executors().start()
        gate.set()
        assert settle(second, MOVE_BOUND)
        assert status(second) != psutil.STATUS_STOPPED
        first.stop()
        waiter.join(BOUND)
        assert not waiter.is_alive()
