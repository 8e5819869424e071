"""Typing-only checks: mypy reads this file under ``mypy mirakuru tests``; pytest never runs it.

It shows that user code written against the API type-checks strictly: chaining keeps the
subclass type, ``state`` is a ``State``, history items are ``StateChange`` values, and the
published extension points can be overridden with their published signatures.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TextIO, assert_type

from hypothesis import given
from hypothesis import strategies as st

from mirakuru import (
    AlreadyRunning,
    Executor,
    ExecutorError,
    HTTPExecutor,
    PidExecutor,
    ProcessExitedWithError,
    SimpleExecutor,
    State,
    StateChange,
    StopReport,
    TCPExecutor,
    TimeoutExpired,
    Trigger,
    probes,
)
from mirakuru.core.budget import Budget
from mirakuru.core.probes import Leaf, Probe
from mirakuru.core.schedule import PollSchedule
from mirakuru.group import ExecutorGroup, start_all
from mirakuru.ports import free_port
from mirakuru.pytest_plugin import Service, ServiceFixture, service_fixture
from mirakuru.testing import (
    FakeClock,
    SimulatedStart,
    assert_lifecycle,
    lifecycle_path,
    simulate_start,
)
from mirakuru.testing import strategies as kit_strategies


class FileService(Executor):
    """A subclass in the published style: attributes first, then the readiness rule."""

    def __init__(self, command: list[str], path: str) -> None:
        self.path = path
        super().__init__(command, timeout=30, sleep=0.05)

    def after_start_check(self) -> bool:
        return bool(self.path)

    def pre_start_check(self) -> bool:
        return False


def chaining(service: FileService) -> None:
    """Every lifecycle method returns the same (sub)class, for chaining."""
    assert_type(service.start(), FileService)
    assert_type(service.stop(), FileService)
    assert_type(service.kill(), FileService)
    assert_type(service.start().stop().start().kill(wait=False), FileService)
    assert_type(service.wait_for(lambda: True), FileService)
    with service as running:
        assert_type(running, FileService)
    with service.stopped() as stopped:
        assert_type(stopped, FileService)


def lifecycle(executor: SimpleExecutor) -> None:
    """The state, the history and the listeners are typed."""
    assert_type(executor.state, State)
    for change in executor.history:
        assert_type(change, StateChange)
        assert_type(change.trigger, Trigger)
        assert_type(change.source, State)
        assert_type(change.at, float)
        assert_type(change.detail, str | None)

    def listener(change: StateChange) -> None:
        print(change)

    assert_type(executor.add_listener(listener), SimpleExecutor)
    assert_type(executor.running(), bool)


def members(executor: SimpleExecutor) -> None:
    """The published members keep usable types."""
    assert_type(executor.command, str)
    assert_type(executor.envvars, dict[str, str])
    assert_type(executor._popen_kwargs, dict[str, Any])
    assert_type(executor._kill_all_kids(9), set[int])
    assert_type(executor.check_timeout(), bool)
    assert_type(executor.output(), TextIO | None)
    assert_type(executor.err_output(), TextIO | None)
    process = executor.process
    if process is not None:
        assert_type(process, subprocess.Popen[str])


def errors(executor: SimpleExecutor) -> None:
    """Errors are constructed positionally and expose their fields."""
    try:
        executor.start()
    except TimeoutExpired as error:
        assert_type(error.timeout, float | None)
    except ProcessExitedWithError as error:
        assert_type(error.exit_code, int)
    except ExecutorError as error:
        print(error.executor, list(error.history), list(error.output_tail))
    TimeoutExpired(executor, 5)
    ProcessExitedWithError(executor, 1)


def constructors() -> None:
    """The published constructor spellings all type-check."""
    SimpleExecutor("sleep 1")
    SimpleExecutor(["sleep", "1"], None, False, 10, 0.1)
    SimpleExecutor(("sleep", "1"), timeout=None, envvars={"A": "b"}, stderr=subprocess.PIPE)
    SimpleExecutor("sleep 1", sig_stop=2, sig_kill=9, exp_sig=2)


def test_with_a_service(web: Service) -> None:
    """A test annotated with the plugin's Service type uses what the docs use on a service."""
    assert_type(web.port, int | None)
    assert_type(web.state, State)
    assert_type(web.output_tail(), list[str])
    assert_type(web.pid, int | None)
    assert_type(web.output(), TextIO | None)
    assert_type(web.err_output(), TextIO | None)
    with web.stopped() as paused:
        assert_type(paused, Service)
        assert not paused.running()
    port: int = web.port or free_port()
    assert port > 0


def declared_services(folder: Path) -> None:
    """service_fixture says what its fixture yields: a Service, or a factory's own executor."""
    web = service_fixture(
        "python3 -m http.server {port}", ready=lambda port: probes.tcp("::1", port)
    )
    assert_type(web, ServiceFixture[Service])
    shared = service_fixture(["redis-server", "--port", "{port}"], shared=True)
    assert_type(shared, ServiceFixture[Service])

    def redis(port: int) -> TCPExecutor:
        return TCPExecutor(["redis-server", "--port", str(port)], host="127.0.0.1", port=port)

    assert_type(service_fixture(redis, scope="module"), ServiceFixture[TCPExecutor])

    def arguments(port: int, tmp_path_factory: object) -> dict[str, object]:
        return {"command": ["server", str(port)], "cwd": folder}

    assert_type(service_fixture(arguments), ServiceFixture[Service])


def executors_have_a_pid(executor: SimpleExecutor) -> None:
    """Every executor has the pid a Service promises."""
    assert_type(executor.pid, int | None)


def groups(first: SimpleExecutor, second: Executor) -> None:
    """The group API keeps the executors and chains like they do."""
    group = start_all(first, second, after={second: [first]})
    assert_type(group, ExecutorGroup)
    with ExecutorGroup(first).add(second, after=[first]) as started:
        assert_type(started, ExecutorGroup)


def drop_in_typing(folder: Path, executor: SimpleExecutor) -> None:
    """User code of the published kind: path parts, the failed executor's state, last_stop."""
    SimpleExecutor([sys.executable, folder / "server.py", "--flag"])
    arguments: Sequence[str] = ("redis-server", "--port", "0")
    TCPExecutor(arguments, host="", port=8838)
    HTTPExecutor(["server"], "http://127.0.0.1/")
    PidExecutor(["daemon"], folder / "daemon.pid")
    try:
        executor.start()
    except AlreadyRunning as error:
        assert_type(error.holder, str | None)
    except ExecutorError as error:
        assert_type(error.executor.state, State)
    report: StopReport | None = executor.last_stop
    if report is not None:
        assert_type(report.escalated, bool)


# -- a user's test module using the testing kit ----------------------------------------------


def make_database() -> TCPExecutor:
    return TCPExecutor(["postgres"], host="127.0.0.1", port=5432, timeout=30, sleep=0.5)


@given(ready_after=st.floats(min_value=2.0, max_value=25.0))
def test_database_start_fits(ready_after: float) -> None:
    """A property test of the user's own timeout, as docs/testing.rst shows it."""
    result = simulate_start(make_database(), ready_after=ready_after)
    assert_type(result, SimulatedStart)
    assert_type(result.outcome, Literal["ready", "timed_out", "exited"])
    assert_type(result.returned_at, float)
    assert_type(result.checks, int)
    assert_type(result.exit_code, int | None)
    for change in result.history:
        assert_type(change, StateChange)
    assert result.outcome == "ready"
    assert_lifecycle(result, "idle → starting → running")
    assert_type(lifecycle_path(make_database()), str)


@given(probe=kit_strategies.probes(), timeout=kit_strategies.timeouts(max_value=10.0))
def test_any_probe_times_out(probe: Probe, timeout: float | None) -> None:
    """The public strategies are typed: probes are Probe values, timeouts optional floats."""
    clock = FakeClock(100.0)
    service = Executor(["service"], ready=probe, timeout=timeout)
    result = simulate_start(service, ready_after=None, exits_after=5.0, exit_code=1, clock=clock)
    assert_type(clock(), float)
    assert_type(clock.advance(1.0), float)
    assert_lifecycle([*result.history], "idle -> starting -> failed")


def kit_strategies_are_typed() -> None:
    """Each strategy names the type it draws."""
    assert_type(kit_strategies.budgets(), st.SearchStrategy[Budget])
    assert_type(kit_strategies.poll_schedules(), st.SearchStrategy[PollSchedule])
    assert_type(kit_strategies.sleeps(), st.SearchStrategy[float])
    assert_type(kit_strategies.leaves(kit_strategies.POLLED_KINDS), st.SearchStrategy[Leaf])
