"""Property tests of the adapter's wait loop, driven by a fake clock and never sleeping.

The loop blocks in ``poll()`` between attempts; an always-readable pipe registered as an
event source makes every ``poll()`` return at once, so only the fake clock moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.adapter.run.waiter import drive, wait_until
from mirakuru.core.budget import Budget
from mirakuru.core.engine import WaitEngine
from mirakuru.core.outcome import Ready, TimedOut
from mirakuru.core.schedule import PollSchedule
from tests.core.strategies import FakeClock, instants

# Only checks move the fake clock, so cost bounds the number of loop turns (<= 500).
costs = st.floats(min_value=0.004, max_value=1.0, allow_nan=False)
budgets = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)


class AlwaysReadable:
    """An event source that is always readable and never exhausted: poll() never blocks."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.wakeups = 0

    def fileno(self) -> int:
        return self._fd

    def on_readable(self) -> bool:
        self.wakeups += 1
        return True


class ReadableOnce(AlwaysReadable):
    """A source that reports end of file the first time it is readable."""

    def on_readable(self) -> bool:
        self.wakeups += 1
        return False


@pytest.fixture(scope="module")
def readable_fd() -> Iterator[int]:
    """The read end of a pipe that always has data waiting."""
    read, write = os.pipe()
    os.write(write, b"x")
    yield read
    os.close(read)
    os.close(write)


class Check:
    """A check that costs ``cost`` fake seconds and passes on call number ``passes_on``."""

    def __init__(self, clock: FakeClock, cost: float, passes_on: int | None = None) -> None:
        self.clock = clock
        self.cost = cost
        self.passes_on = passes_on
        self.called_at: list[float] = []

    def __call__(self) -> bool:
        self.called_at.append(self.clock())
        self.clock.advance(self.cost)
        return self.passes_on is not None and len(self.called_at) >= self.passes_on


class TestWaitUntil:
    """The wait loop's contract: at least one check, never past the deadline."""

    @given(start=instants, overdue=st.floats(min_value=0.0, max_value=100.0), cost=costs)
    def test_expired_budget_checks_exactly_once(
        self, readable_fd: int, start: float, overdue: float, cost: float
    ) -> None:
        """With the budget already gone, the check still runs once, and only once."""
        clock = FakeClock(start + overdue)
        check = Check(clock, cost)
        outcome = wait_until(
            check,
            Budget(start),
            PollSchedule(),
            sources=[AlwaysReadable(readable_fd)],
            clock=clock,
        )
        assert outcome == TimedOut(1)
        assert len(check.called_at) == 1

    @given(timeout=budgets, cost=costs, passes_on=st.integers(1, 50))
    def test_ready_counts_attempts(
        self, readable_fd: int, timeout: float, cost: float, passes_on: int
    ) -> None:
        """A check passing on call k gives Ready(k) after exactly k calls, if time allows."""
        clock = FakeClock()
        check = Check(clock, cost, passes_on)
        outcome = wait_until(
            check,
            Budget.starting_at(0.0, timeout),
            PollSchedule(),
            sources=[AlwaysReadable(readable_fd)],
            clock=clock,
        )
        if isinstance(outcome, Ready):
            assert outcome == Ready(passes_on)
            assert len(check.called_at) == passes_on
        else:
            assert len(check.called_at) < passes_on
            assert clock() >= timeout

    @given(timeout=budgets, cost=costs, adaptive=st.booleans())
    def test_never_checks_after_the_deadline(
        self, readable_fd: int, timeout: float, cost: float, adaptive: bool
    ) -> None:
        """Only the first check may start at or after the deadline; then it gives up."""
        clock = FakeClock()
        check = Check(clock, cost)
        outcome = wait_until(
            check,
            Budget.starting_at(0.0, timeout),
            PollSchedule(),
            sources=[AlwaysReadable(readable_fd)],
            adaptive=adaptive,
            clock=clock,
        )
        assert outcome == TimedOut(len(check.called_at))
        assert all(at < timeout for at in check.called_at[1:])
        assert clock() >= timeout

    def test_exhausted_source_is_dropped(self, readable_fd: int) -> None:
        """A source that reports end of file is not consulted again."""
        clock = FakeClock()
        once = ReadableOnce(readable_fd)
        always = AlwaysReadable(os.dup(readable_fd))
        try:
            check = Check(clock, 0.01, passes_on=5)
            outcome = wait_until(
                check,
                Budget.starting_at(0.0, 1.0),
                PollSchedule(),
                sources=[once, always],
                clock=clock,
            )
        finally:
            os.close(always.fileno())
        assert outcome == Ready(5)
        assert once.wakeups == 1
        assert always.wakeups == 4


class Ticks:
    """Wake-ups from the fake clock: each wait passes its whole time, unless an event is
    scripted for that turn (then it ends at once)."""

    def __init__(self, clock: FakeClock, events: set[int]) -> None:
        self.clock = clock
        self.events = events
        self.turn = 0
        self.served = 0.0
        self.woken = False

    def wait(self, timeout: float) -> bool:
        self.turn += 1
        self.woken = self.turn in self.events
        if not self.woken:
            self.clock.advance(timeout)
        return False


class TestStandIn:
    """The cheap "not ready yet" answers timed wake-ups only; the check runs on the rest."""

    @given(
        events=st.sets(st.integers(1, 40), max_size=10),
        sure=st.lists(st.booleans(), min_size=1, max_size=40),
    )
    def test_only_timed_wakeups_are_answered_cheaply(
        self, events: set[int], sure: list[bool]
    ) -> None:
        """The first check and every check after an event run; after a timed wake-up the
        check runs only when the stand-in is not sure."""
        clock = FakeClock()
        wakeups = Ticks(clock, events)
        ran: list[int] = []
        asked: list[int] = []

        def check() -> bool:
            ran.append(wakeups.turn)
            return False

        def unready() -> bool:
            asked.append(wakeups.turn)
            return sure[wakeups.turn % len(sure)]

        engine = WaitEngine(Budget.starting_at(0.0, 0.2), PollSchedule(), adaptive=False)
        outcome = drive(engine, check, wakeups, clock=clock, unready=unready)
        assert isinstance(outcome, TimedOut)
        assert outcome.attempts == len(ran) + sum(sure[t % len(sure)] for t in asked)
        assert ran[0] == 0  # the first check ran before any wait
        assert not set(asked) & events
        for turn in range(1, wakeups.turn + 1):
            if turn in events:
                assert turn in ran or turn == wakeups.turn
            elif turn in asked and sure[turn % len(sure)]:
                assert turn not in ran
