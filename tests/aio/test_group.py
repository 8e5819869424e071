"""astart_all() and the async ExecutorGroup: dependencies, failures, reverse stop order."""

from __future__ import annotations

import anyio
import pytest

from mirakuru import (
    Executor,
    ExecutorGroup,
    ProcessExitedWithError,
    State,
    StateChange,
    astart_all,
    probes,
)
from tests.aio.programs import banner_after, state
from tests.helpers import free_port, marked_processes, python_command

pytestmark = pytest.mark.anyio


def service(delay: float = 0.1) -> Executor:
    """A service ready (banner) after ``delay`` seconds."""
    return Executor(banner_after(delay), ready=probes.banner("^ready$"), timeout=30)


def when(executor: Executor, dest: State) -> float:
    """The instant ``executor`` last entered ``dest``."""
    return max(change.at for change in executor.history if change.dest is dest)


class TestAstartAll:
    """Concurrent starts honouring dependencies; stops in reverse order."""

    async def test_async_with(self) -> None:
        """``async with astart_all(...)`` starts every executor and stops them after."""
        executors = [service(), service(), service()]
        async with astart_all(*executors) as group:
            assert isinstance(group, ExecutorGroup)
            assert all(state(e) is State.RUNNING for e in executors)
        assert all(state(e) is State.STOPPED for e in executors)

    async def test_await(self) -> None:
        """``await astart_all(...)`` gives the started group; ``astop()`` stops it."""
        executors = [service(), service()]
        group = await astart_all(*executors)
        assert all(state(e) is State.RUNNING for e in executors)
        assert await group.astop() is group
        assert all(state(e) is State.STOPPED for e in executors)

    async def test_dependencies_and_reverse_stop(self) -> None:
        """A dependent starts after its dependency is ready and stops before it."""
        database, app = service(0.2), service(0.0)
        async with ExecutorGroup(database, app, after={app: [database]}):
            assert when(app, State.STARTING) >= when(database, State.RUNNING)
        assert when(app, State.STOPPED) <= when(database, State.STOPPING)

    async def test_failure_stops_the_rest(self) -> None:
        """One failing start raises its error; the others are stopped or cut short."""
        slow, up = service(60), service(0.0)
        ready = probes.tcp("127.0.0.1", free_port())
        broken = Executor(python_command("raise SystemExit(4)"), ready=ready, timeout=30)
        changes: list[StateChange] = []
        up.add_listener(changes.append)
        with pytest.raises(ProcessExitedWithError) as caught:
            await astart_all(slow, up, broken)
        assert caught.value.group_failures == {broken: caught.value}  # type: ignore[attr-defined]
        for executor in (slow, up, broken):
            assert not marked_processes(executor)
        assert state(slow) is State.FAILED
        assert state(broken) is State.FAILED

    async def test_cancelled(self) -> None:
        """A cancelled group start leaves nothing running."""
        executors = [service(0.0), service(60)]
        with anyio.move_on_after(0.5) as scope:
            await astart_all(*executors)
        assert scope.cancelled_caught
        for executor in executors:
            assert not marked_processes(executor)
            assert state(executor) in {State.FAILED, State.STOPPED}
