"""Declaring a service: :func:`service_fixture` and how it builds the executor it yields.

What a conftest.py writes is kept as a spec; the executor is built (its free port chosen,
its probe made) only when a test first asks for the fixture.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Protocol,
    Self,
    TextIO,
    TypeAlias,
    TypeVar,
    cast,
    overload,
    runtime_checkable,
)

import pytest

from mirakuru.exceptions import check_environment
from mirakuru.pytest_plugin.registry import (
    _LAST_WORKER_WAIT,
    _SHARED_DECLARED,
    Services,
    _is_worker,
    _reservations,
    _services,
    _shared_root,
)
from mirakuru.pytest_plugin.reuse import held, keep, reuse_setting
from mirakuru.pytest_plugin.starting import show_progress, started

if TYPE_CHECKING:
    from mirakuru._reuse import Lease
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.lifecycle import State, StateChange
    from mirakuru.core.probes import Probe
    from mirakuru.pytest_plugin.shared import Share

__all__ = ["ReadySpec", "Scope", "Service", "ServiceFixture", "service_fixture"]

Scope: TypeAlias = Literal["session", "package", "module", "class", "function"]
#: A probe, or a function building one from the chosen port.
ReadySpec: TypeAlias = "Probe | Callable[[int], Probe] | None"

PORT_PLACEHOLDER = "{port}"
#: A factory parameter of this name receives the free port instead of a fixture.
PORT_PARAMETER = "port"
#: The fixtures every service fixture asks for, ahead of its factory's own. The plugin's
#: ``mirakuru_services`` is asked for only once the plugin is known to be loaded: with the
#: plugin disabled, pytest would otherwise say only that this fixture does not exist.
_OWN_FIXTURES = ("request", "tmp_path_factory")


@runtime_checkable
class Service(Protocol):
    """What a service fixture gives a test: an executor, or a view of a shared one.

    ``isinstance(value, Service)`` checks that every member below is there.
    """

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

    @property
    def pid(self) -> int | None:
        """The PID of the service's process; None when it does not run."""
        ...

    def running(self) -> bool:
        """Whether the service's process is alive."""
        ...

    def output_tail(self) -> list[str]:
        """The last lines of output, each marked with its stream."""
        ...

    def output(self) -> TextIO | None:
        """The service's stdout from its start, as a stream (None when not captured here)."""
        ...

    def err_output(self) -> TextIO | None:
        """The service's stderr from its start, as a stream (None when not captured here)."""
        ...

    def stopped(self) -> AbstractContextManager[Self]:
        """Stop the service for the body of a ``with`` block, then start it again."""
        ...


_S_co = TypeVar("_S_co", covariant=True)


class ServiceFixture(Protocol[_S_co]):
    """What :func:`service_fixture` returns: a pytest fixture whose value is a ``_S_co``.

    As with any pytest fixture, tests get the value by naming the fixture, never by calling
    it; the call signature only tells type checkers what the value is (as
    ``@pytest.fixture`` does for the function it decorates).
    """

    def __call__(self, **fixtures: Any) -> Generator[_S_co]:
        """Not to be called: pytest runs the fixture and passes its value to tests."""
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
        reuse: bool = False,
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
        check_environment(envvars or {})
        if shared and scope != "session":
            raise ValueError(f"service_fixture: shared=True needs scope='session', got {scope!r}")
        if reuse:
            from mirakuru.pytest_plugin.keepable import check_keepable

            check_keepable(command, scope, executor_kwargs)
        self.reuse = reuse
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


def _require_plugin(config: pytest.Config, fixture: str) -> None:
    """Fail the set-up with a plain reason when the plugin is not loaded in this run."""
    __tracebackhide__ = True
    plugin = sys.modules.get(__package__ or "mirakuru.pytest_plugin")
    if plugin is None or not config.pluginmanager.is_registered(plugin):
        pytest.fail(
            f"service fixture {fixture!r} needs the mirakuru pytest plugin, which is disabled"
            " in this run (by -p no:mirakuru, or by PYTEST_DISABLE_PLUGIN_AUTOLOAD without"
            " -p mirakuru)",
            pytrace=False,
        )


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
    check_environment(envvars)  # before {port} is filled in, which needs str values
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


def _kept(
    spec: _Spec, request: pytest.FixtureRequest, fixture: str, declared_in: str | None
) -> Lease | None:
    """With reuse on, a lease on the service kept by its supervisor (None: started here)."""
    __tracebackhide__ = True
    if not (spec.reuse and reuse_setting(request.config).on):
        return None
    from mirakuru.pytest_plugin.keepable import declaration

    kept = declaration(spec.command, spec.ready, spec.options, fixture, declared_in)
    return keep(request, kept, kept.names[0])


def _share(
    spec: _Spec, factory: pytest.TempPathFactory, fixture: str, declared_in: str | None
) -> Share:
    """The run-wide lease of a service shared by every xdist worker."""
    from mirakuru.pytest_plugin.shared import Share, share_key

    return Share(
        _shared_root(factory),
        fixture,
        lock_timeout=(spec.options["timeout"] or 600) + 60,
        drain_timeout=_LAST_WORKER_WAIT,
        key=share_key(fixture, declared_in),
    )


_E = TypeVar("_E", bound="SimpleExecutor")
#: What a service factory may return instead of an executor.
_Made: TypeAlias = "str | Sequence[str] | Mapping[str, Any]"


@overload
def service_fixture(
    command: Callable[..., _E],
    ready: ReadySpec = None,
    *,
    scope: Scope = "session",
    name: str | None = None,
    shared: Literal[False] = False,
    reuse: Literal[False] = False,
    timeout: float | None = 60,
    stop_timeout: float | None = None,
    envvars: Mapping[str, str] | None = None,
    **executor_kwargs: Any,
) -> ServiceFixture[_E]: ...


@overload
def service_fixture(
    command: str | Sequence[str] | Callable[..., _Made | SimpleExecutor],
    ready: ReadySpec = None,
    *,
    scope: Scope = "session",
    name: str | None = None,
    shared: bool = False,
    reuse: bool = False,
    timeout: float | None = 60,
    stop_timeout: float | None = None,
    envvars: Mapping[str, str] | None = None,
    **executor_kwargs: Any,
) -> ServiceFixture[Service]: ...


def service_fixture(
    command: str | Sequence[str] | Callable[..., Any],
    ready: ReadySpec = None,
    *,
    scope: Scope = "session",
    name: str | None = None,
    shared: bool = False,
    reuse: bool = False,
    timeout: float | None = 60,
    stop_timeout: float | None = None,
    envvars: Mapping[str, str] | None = None,
    **executor_kwargs: Any,
) -> ServiceFixture[Any]:
    """A fixture that starts ``command``, waits for ``ready`` and yields the executor.

    Write ``{port}`` in the command (and in ``envvars`` values) to get a free port, chosen
    at set-up and unique across pytest-xdist workers; ``ready`` may then be a function of
    that port, e.g. ``lambda port: probes.tcp("127.0.0.1", port)``. The executor's ``port``
    attribute holds it. The whole process tree is stopped when ``scope`` ends, pass or fail.

    ``command`` may instead be a function whose parameters name other fixtures (and
    ``port``, for a free port); it returns the executor, a command, or a dict of executor
    arguments including ``command``. With ``shared=True`` every pytest-xdist worker of a
    run uses one instance: the first starts it, the last to finish stops it.

    For type checkers, the fixture's value is the executor a factory returns, else a
    :class:`Service` (the other workers sharing a service get a read-only view of it).

    With ``reuse=True`` (a session service given by its command) and reuse turned on for
    the run (``--mirakuru-reuse`` or ``MIRAKURU_REUSE=1``, never under ``CI``), a supervisor
    keeps the service after the run, and the next run attaches to it while it is provably
    the same and healthy; the fixture then gives a view whose ``port`` and ``pid`` are the
    kept service's.
    """
    if shared:
        _SHARED_DECLARED.append(True)
    # Where it is declared tells shared services of one name apart (a/ and b/ conftests).
    declared_in: str | None = sys._getframe(1).f_globals.get("__file__")
    spec = _Spec(
        command,
        ready,
        scope=scope,
        shared=shared,
        timeout=timeout,
        stop_timeout=stop_timeout,
        envvars=envvars,
        executor_kwargs=executor_kwargs,
        reuse=reuse,
    )

    def service(**fixtures: Any) -> Generator[Any]:
        __tracebackhide__ = True
        request: pytest.FixtureRequest = fixtures["request"]
        tmp_path_factory: pytest.TempPathFactory = fixtures["tmp_path_factory"]
        dependencies = {name: fixtures[name] for name in spec.dependencies}
        fixture = request.fixturename or "service"
        _require_plugin(request.config, fixture)
        lease = _kept(spec, request, fixture, declared_in)
        if lease is not None:
            yield from held(request, lease, next(iter(lease.services)))
            return
        services: Services = request.getfixturevalue("mirakuru_services")
        known = _services(request.config)
        provided: Any = services._claim(spec)
        share = None
        if provided is not None:
            known[fixture] = provided
        elif spec.shared and _is_worker(request.config):
            share = _share(spec, tmp_path_factory, fixture, declared_in)

            def start() -> SimpleExecutor:
                __tracebackhide__ = True
                executor = spec.build(dependencies, _reservations(tmp_path_factory))
                known[fixture] = executor
                show_progress(executor, request, fixture)
                return started(executor)

            provided = share.acquire(start)
            known[fixture] = provided
        else:
            executor = spec.build(dependencies, _reservations(tmp_path_factory))
            # Recorded before starting, so a failed start-up is explained in the test's report.
            known[fixture] = executor
            show_progress(executor, request, fixture)
            provided = started(executor)
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
    # pytest's own type for a fixture differs between its versions; ours says what it yields.
    return cast("ServiceFixture[Any]", pytest.fixture(scope=scope, name=name)(service))
