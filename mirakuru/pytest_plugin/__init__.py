"""The pytest plugin: declare a service in conftest.py, get a started executor as a fixture.

Loaded in every pytest run once mirakuru is installed, so it imports only pytest at the top
and touches nothing unless a fixture made by :func:`service_fixture` is used.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import pytest

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.lifecycle import State, StateChange
    from mirakuru.core.probes import Probe

__all__ = ["Service", "Services", "describe_service", "service_fixture"]

Scope: TypeAlias = Literal["session", "package", "module", "class", "function"]
#: A probe, or a function building one from the chosen port.
ReadySpec: TypeAlias = "Probe | Callable[[int], Probe] | None"

PORT_PLACEHOLDER = "{port}"
#: A factory parameter of this name receives the free port instead of a fixture.
PORT_PARAMETER = "port"
#: The fixtures every service fixture asks for, ahead of its factory's own.
_OWN_FIXTURES = ("mirakuru_services", "request", "tmp_path_factory")

#: Per run: fixture name -> the executor (or shared view) it provided last.
_SERVICES = pytest.StashKey[dict[str, Any]]()
#: The longest the owner of a shared service waits for the other workers' tests to end. A
#: crashed or killed worker no longer counts, so this only bounds a hung one.
_LAST_WORKER_WAIT = 6 * 3600.0
#: Whether a conftest declared a service shared across xdist workers.
_SHARED_DECLARED: list[bool] = []
#: Per test: the executors already running when its setup began.
_RUNNING_BEFORE = pytest.StashKey[set[int]]()
#: The executors started since the current test's setup began (stopped ones too), or None
#: between tests; filled by a start observer so its failure report can describe them.
_STARTED_IN_TEST: list[list[_Started] | None] = [None]


class Service(Protocol):
    """What a service fixture gives a test: an executor, or a view of a shared one."""

    command: str
    port: int | None

    @property
    def state(self) -> State:
        """The lifecycle state (``running`` while the test uses it)."""
        ...

    @property
    def history(self) -> tuple[StateChange, ...]:
        """The recorded state changes."""
        ...

    def running(self) -> bool:
        """Whether the service's process is alive."""
        ...

    def output_tail(self) -> list[str]:
        """The last lines of output, each marked with its stream."""
        ...


class _Spec:
    """How to build one declared service's executor."""

    def __init__(
        self,
        command: Any,
        ready: ReadySpec,
        *,
        scope: Scope,
        shared: bool,
        timeout: float | None,
        stop_timeout: float | None,
        envvars: Mapping[str, str] | None,
        executor_kwargs: Mapping[str, Any],
    ) -> None:
        self.factory: Callable[..., Any] | None = None
        self.dependencies: tuple[str, ...] = ()
        if callable(command):
            self.factory = command
            self.dependencies = tuple(
                name for name in inspect.signature(command).parameters if name != PORT_PARAMETER
            )
            clash = set(self.dependencies) & {"mirakuru_services"}
            if clash:
                raise TypeError(f"service_fixture: the factory may not take {sorted(clash)}")
        elif not isinstance(command, str | Sequence):
            raise TypeError(
                "service_fixture: command must be a string, a sequence of arguments, or a"
                f" function returning one (or an executor); got {command!r}"
            )
        if shared and scope != "session":
            raise ValueError(f"service_fixture: shared=True needs scope='session', got {scope!r}")
        self.command = command
        self.ready = ready
        self.scope = scope
        self.shared = shared
        self.options: dict[str, Any] = {
            "timeout": timeout,
            "stop_timeout": stop_timeout,
            "envvars": dict(envvars or {}),
            **executor_kwargs,
        }
        self.options.setdefault("stderr", subprocess.PIPE)

    def build(self, dependencies: Mapping[str, Any], reservations: Path) -> SimpleExecutor:
        """A new, unstarted executor (with its ``port`` attribute) for this service."""
        __tracebackhide__ = True
        from mirakuru.base import SimpleExecutor

        if self.factory is None:
            return _executor(self.command, self.ready, dict(self.options), reservations)
        arguments = dict(dependencies)
        port = None
        if PORT_PARAMETER in inspect.signature(self.factory).parameters:
            from mirakuru.adapter.ports import free_port

            port = arguments[PORT_PARAMETER] = free_port(reservations)
        made = self.factory(**arguments)
        if isinstance(made, SimpleExecutor):
            if getattr(made, "port", None) is None:
                made.port = port  # type: ignore[attr-defined]
            made._mirakuru_fixture = True  # type: ignore[attr-defined]
            return made
        options = dict(self.options)
        if isinstance(made, Mapping):
            made = dict(made)
            if "command" not in made:
                raise TypeError(
                    f"the service factory {self.factory.__qualname__} returned {made!r},"
                    " which has no 'command'"
                )
            command = made.pop("command")
            ready = made.pop("ready", self.ready)
            options.update(made)
        elif isinstance(made, str | Sequence):
            command, ready = made, self.ready
        else:
            raise TypeError(
                f"the service factory {self.factory.__qualname__} returned {made!r}; expected"
                " an executor, a command, or a dict of executor arguments with 'command'"
            )
        return _executor(command, ready, options, reservations, port)


def _needs_port(command: str | Sequence[str], ready: object, envvars: Mapping[str, str]) -> bool:
    parts = [command] if isinstance(command, str) else list(command)
    texts = [*parts, *envvars.values()]
    return callable(ready) or any(PORT_PLACEHOLDER in str(text) for text in texts)


def _executor(
    command: str | Sequence[str],
    ready: ReadySpec,
    options: dict[str, Any],
    reservations: Path,
    port: int | None = None,
) -> SimpleExecutor:
    from mirakuru.adapter.ports import fill_port, free_port
    from mirakuru.base import Executor, SimpleExecutor

    envvars = dict(options.pop("envvars", None) or {})
    if port is None and _needs_port(command, ready, envvars):
        port = free_port(reservations)
    filled: str | list[str] = (
        fill_port(command, port)
        if isinstance(command, str)
        else [fill_port(str(part), port) for part in command]
    )
    probe: Probe | None
    if callable(ready):
        if port is None:
            raise TypeError("a ready function needs a port: the factory took no 'port'")
        probe = ready(port)
    else:
        probe = ready
    options["envvars"] = {key: fill_port(value, port) for key, value in envvars.items()}
    executor = (
        SimpleExecutor(filled, **options)
        if probe is None
        else Executor(filled, ready=probe, **options)
    )
    executor.port = port  # type: ignore[attr-defined]
    executor._mirakuru_fixture = True  # type: ignore[attr-defined]
    return executor


def service_fixture(
    command: str | Sequence[str] | Callable[..., Any],
    ready: ReadySpec = None,
    *,
    scope: Scope = "session",
    name: str | None = None,
    shared: bool = False,
    timeout: float | None = 60,
    stop_timeout: float | None = None,
    envvars: Mapping[str, str] | None = None,
    **executor_kwargs: Any,
) -> Any:
    """A fixture that starts ``command``, waits for ``ready`` and yields the executor.

    Write ``{port}`` in the command (and in ``envvars`` values) to get a free port, chosen
    at set-up and unique across pytest-xdist workers; ``ready`` may then be a function of
    that port, e.g. ``lambda port: probes.tcp("127.0.0.1", port)``. The executor's ``port``
    attribute holds it. The whole process tree is stopped when ``scope`` ends, pass or fail.

    ``command`` may instead be a function whose parameters name other fixtures (and
    ``port``, for a free port); it returns the executor, a command, or a dict of executor
    arguments including ``command``. With ``shared=True`` every pytest-xdist worker of a
    run uses one instance: the first starts it, the last to finish stops it.
    """
    if shared:
        _SHARED_DECLARED.append(True)
    spec = _Spec(
        command,
        ready,
        scope=scope,
        shared=shared,
        timeout=timeout,
        stop_timeout=stop_timeout,
        envvars=envvars,
        executor_kwargs=executor_kwargs,
    )

    def service(**fixtures: Any) -> Generator[Any]:
        __tracebackhide__ = True
        services: Services = fixtures["mirakuru_services"]
        request: pytest.FixtureRequest = fixtures["request"]
        tmp_path_factory: pytest.TempPathFactory = fixtures["tmp_path_factory"]
        dependencies = {name: fixtures[name] for name in spec.dependencies}
        fixture = request.fixturename or "service"
        known = _services(request.config)
        provided: Any = services._claim(spec)
        share = None
        if provided is not None:
            known[fixture] = provided
        elif spec.shared and _is_worker(request.config):
            from mirakuru.pytest_plugin.shared import Share

            share = Share(
                _shared_root(tmp_path_factory),
                fixture,
                lock_timeout=(spec.options["timeout"] or 600) + 60,
                drain_timeout=_LAST_WORKER_WAIT,
            )

            def start() -> SimpleExecutor:
                __tracebackhide__ = True
                executor = spec.build(dependencies, _reservations(tmp_path_factory))
                known[fixture] = executor
                return executor.start()

            provided = share.acquire(start)
            known[fixture] = provided
        else:
            executor = spec.build(dependencies, _reservations(tmp_path_factory))
            # Recorded before starting, so a failed start-up is explained in the test's report.
            known[fixture] = executor
            provided = executor.start()
        try:
            yield provided
        finally:
            try:
                if share is not None:
                    share.release()
                else:
                    provided.stop()
            finally:
                known.pop(fixture, None)

    names = dict.fromkeys((*_OWN_FIXTURES, *spec.dependencies))
    # pytest reads a fixture's arguments from its signature: the plugin's and the factory's.
    service.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in names]
    )
    service._mirakuru_spec = spec  # type: ignore[attr-defined]
    return pytest.fixture(scope=scope, name=name)(service)


class Services:
    """Session services the selected tests need, started together in the first set-up."""

    def __init__(self) -> None:
        self._started: dict[int, SimpleExecutor] = {}
        self._failed: dict[int, BaseException] = {}
        self.executors: dict[str, SimpleExecutor] = {}

    def _claim(self, spec: _Spec) -> SimpleExecutor | None:
        __tracebackhide__ = True
        error = self._failed.get(id(spec))
        if error is not None:
            raise error
        return self._started.pop(id(spec), None)

    def _start(self, request: pytest.FixtureRequest) -> None:
        from mirakuru.group import ExecutorGroup

        wanted: dict[int, tuple[str, _Spec]] = {}
        for item in request.session.items:
            info = getattr(item, "_fixtureinfo", None)
            definitions = getattr(info, "name2fixturedefs", {})
            for fixture, chain in definitions.items():
                spec = getattr(chain[-1].func, "_mirakuru_spec", None)
                if spec is None or chain[-1].scope != "session":
                    continue
                if spec.shared and _is_worker(request.config):
                    continue  # started under the run-wide lock instead
                if not all(
                    name in definitions and definitions[name][-1].scope == "session"
                    for name in spec.dependencies
                ):
                    continue  # e.g. it takes ``request``: its own fixture builds it
                wanted.setdefault(id(spec), (fixture, spec))
        if len(wanted) < 2:
            return  # nothing to overlap: the fixture starts its service as usual
        factory = request.getfixturevalue("tmp_path_factory")
        executors: dict[SimpleExecutor, tuple[int, str]] = {}
        for key, (fixture, spec) in wanted.items():
            try:
                dependencies = {name: request.getfixturevalue(name) for name in spec.dependencies}
                executor = spec.build(dependencies, _reservations(factory))
            except (Exception, pytest.skip.Exception, pytest.fail.Exception):  # noqa: S112
                continue  # the service's own fixture meets (and reports) this again
            executors[executor] = (key, fixture)
        known = _services(request.config)
        group = ExecutorGroup(*executors)
        try:
            group.start()
        except Exception as error:
            failures: Mapping[SimpleExecutor, BaseException] = getattr(error, "group_failures", {})
            for executor, failure in failures.items():
                key, fixture = executors[executor]
                self._failed[key] = failure
                known[fixture] = executor
            return
        for executor, (key, fixture) in executors.items():
            self._started[key] = executor
            self.executors[fixture] = executor

    def _stop_unclaimed(self) -> None:
        while self._started:
            _, executor = self._started.popitem()
            executor.stop()


@pytest.fixture(scope="session")
def mirakuru_services(request: pytest.FixtureRequest) -> Generator[Services]:
    """Starts, all at once, every session service the selected tests use."""
    __tracebackhide__ = True
    services = Services()
    services._start(request)
    try:
        yield services
    finally:
        services._stop_unclaimed()


def _is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (its environment may be inherited)."""
    return hasattr(config, "workerinput")


def _run_root(factory: pytest.TempPathFactory) -> Path:
    """A directory shared by every worker of this run (xdist workers' basetemps are siblings)."""
    basetemp = factory.getbasetemp()
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def _shared_root(factory: pytest.TempPathFactory) -> Path:
    return _run_root(factory) / "mirakuru-shared"


def _xdist_factory(config: pytest.Config) -> pytest.TempPathFactory | None:
    """This worker's temp path factory, when it is an xdist worker of a run sharing services."""
    if not (_SHARED_DECLARED and _is_worker(config)):
        return None
    factory: pytest.TempPathFactory | None = getattr(config, "_tmp_path_factory", None)
    return factory


def pytest_collection_finish(session: pytest.Session) -> None:
    """An xdist worker announces itself, so a shared service's owner waits for it.

    After collection every conftest is loaded, and xdist sends no test to any worker
    before all of them have collected, so no owner can miss a worker.
    """
    factory = _xdist_factory(session.config)
    if factory is not None:
        from mirakuru.pytest_plugin.shared import arrive

        arrive(_shared_root(factory))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """After its last test a worker leaves, before its session fixtures are torn down."""
    __tracebackhide__ = True
    if nextitem is None:
        _leave(item.config)
    return (yield)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker that ran no test leaves too."""
    _leave(session.config)


def _leave(config: pytest.Config) -> None:
    factory = _xdist_factory(config)
    if factory is not None:
        from mirakuru.pytest_plugin.shared import leave

        leave(_shared_root(factory))


def _reservations(factory: pytest.TempPathFactory) -> Path:
    return _run_root(factory) / "mirakuru-ports"


def _services(config: pytest.Config) -> dict[str, Any]:
    services = config.stash.get(_SERVICES, None)
    if services is None:
        services = config.stash[_SERVICES] = {}
    return services


def describe_service(executor: Any, *, tail_shown: bool = False) -> str:
    """The report section for one service: command, port, state, history and output tail."""
    lines = [f"command: {executor.command}"]
    port = getattr(executor, "port", None)
    if port is not None:
        lines.append(f"port: {port}")
    owner = getattr(executor, "owner_pid", None)
    if owner is not None:
        lines.append(f"shared: started by another worker (pid {owner})")
    lines.append(f"state: {executor.state.value}")
    history = tuple(executor.history)
    exited = _exit_note(executor, history)
    if exited:
        lines.append(exited)
    if history:
        lines.append("history:")
        origin = history[0].at
        for change in history:
            detail = f"  ({change.detail})" if getattr(change, "detail", None) else ""
            lines.append(
                f"  +{change.at - origin:8.3f} s  {change.source.value} -> {change.dest.value}"
                f"  [{change.trigger.value}]{detail}"
            )
    if tail_shown:
        lines.append("output tail: (shown in the error above)")
        return "\n".join(lines)
    tail = list(executor.output_tail())
    lines.append("output tail:" if tail else "output tail: (nothing captured)")
    lines.extend(f"  {line}" for line in tail)
    return "\n".join(lines)


def _exit_note(executor: Any, history: tuple[Any, ...]) -> str | None:
    """ "the service exited with code N at +T s" for a service that died on its own."""
    from mirakuru.core.lifecycle import State

    process = getattr(executor, "process", None)
    code = process.poll() if process is not None else None
    if executor.state is not State.FAILED and code is None:
        return None
    if executor.state is State.STOPPED or (history and history[-1].source is State.STOPPING):
        return None  # stopped on purpose
    if code is None:
        return None
    origin = history[0].at if history else None
    failed = [change.at for change in history if change.dest is State.FAILED]
    if origin is None:
        return f"the service exited with code {code}"
    at = failed[-1] if failed else time.monotonic()
    return f"the service exited with code {code} at +{at - origin:.3f} s"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None]:
    """Note which executors already run, to describe the ones this test starts by hand."""
    __tracebackhide__ = True
    item.stash[_RUNNING_BEFORE] = {id(executor) for executor in _running_executors()}
    _watch_starts()
    _STARTED_IN_TEST[0] = []
    return (yield)


def _watch_starts() -> None:
    from mirakuru.adapter import observers

    observers.remove(_started)  # once per process, whatever the number of tests
    observers.add(_started)


class _Started:
    """An executor started during the current test, held weakly (a dropped one must still be
    collected, and so killed), with its description taken when it stopped."""

    def __init__(self, executor: Any) -> None:
        self.ref = weakref.ref(executor)
        self.title = f"mirakuru: {executor.command}"
        self.snapshot: str | None = None
        executor.add_listener(self.changed)

    def changed(self, change: Any) -> None:
        from mirakuru.core.lifecycle import State

        executor = self.ref()
        if executor is not None and change.dest in (State.STOPPED, State.FAILED):
            self.snapshot = describe_service(executor)

    def forget(self) -> None:
        executor = self.ref()
        if executor is not None:
            executor.remove_listener(self.changed)


def _started(executor: Any) -> None:
    started = _STARTED_IN_TEST[0]
    if started is not None and all(known.ref() is not executor for known in started):
        started.append(_Started(executor))


def _running_executors() -> list[Any]:
    # Not imported here: a run that never imported mirakuru's executors started none.
    registry = sys.modules.get("mirakuru.adapter.registry")
    return list(registry.running()) if registry is not None else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append a section per service the failed test used, like captured logs."""
    __tracebackhide__ = True
    report = yield
    started = _STARTED_IN_TEST[0] or []
    if report.when == "teardown":
        _STARTED_IN_TEST[0] = None
        for record in started:
            record.forget()
    if not report.failed:
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    described: set[int] = set()
    services = item.config.stash.get(_SERVICES, None) or {}
    for fixture in getattr(item, "fixturenames", ()):
        executor = services.get(fixture)
        if executor is not None and id(executor) not in described:
            described.add(id(executor))
            report.sections.append(
                (
                    f"mirakuru: {fixture}",
                    describe_service(executor, tail_shown=_tail_in(error, executor)),
                )
            )
    before = item.stash.get(_RUNNING_BEFORE, None)
    if before is not None:
        alive = [record.ref() for record in started]
        running = _running_executors()
        for record in started:
            if record.ref() is None and record.snapshot is not None:
                report.sections.append((record.title, record.snapshot))  # stopped and dropped
        candidates = {id(executor): executor for executor in (*alive, *running) if executor}
        for executor in candidates.values():
            if id(executor) in before or id(executor) in described:
                continue
            if getattr(executor, "_mirakuru_fixture", False):
                continue  # a service of a fixture this test does not use
            described.add(id(executor))
            report.sections.append(
                (
                    f"mirakuru: {executor.command}",
                    describe_service(executor, tail_shown=_tail_in(error, executor)),
                )
            )
    return report


def _tail_in(error: BaseException | None, executor: object) -> bool:
    """Whether ``error`` already prints this executor's output tail."""
    return (
        error is not None
        and getattr(error, "executor", None) is executor
        and bool(getattr(error, "output_tail", ()))
    )
