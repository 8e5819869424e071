"""This run's services: the session ones started together, the fixture each provided, and
the xdist workers' arrival and departure for services shared across workers.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mirakuru.pytest_plugin.reuse import reuse_setting
from mirakuru.pytest_plugin.starting import show_progress, trimmed

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor
    from mirakuru.pytest_plugin.declaration import _Spec

__all__ = ["Services", "mirakuru_services"]

#: Per run: fixture name -> the executor (or shared view) it provided last.
_SERVICES = pytest.StashKey[dict[str, Any]]()
#: The longest the owner of a shared service waits for the other workers' tests to end. A
#: crashed or killed worker no longer counts, so this only bounds a hung one.
_LAST_WORKER_WAIT = 6 * 3600.0
#: Whether a conftest declared a service shared across xdist workers.
_SHARED_DECLARED: list[bool] = []


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
            raise trimmed(error) from None
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
                if spec.reuse and reuse_setting(request.config).on:
                    continue  # asked of its supervisor instead
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
            show_progress(executor, request, fixture)
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
    """A directory shared by every worker of this run (xdist workers' basetemps are siblings),
    never a place other users can write to (see :func:`mirakuru.ports.run_reservations`)."""
    from mirakuru.ports import shared_root

    return shared_root(factory.getbasetemp())


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
