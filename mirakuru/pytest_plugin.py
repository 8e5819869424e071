"""The pytest plugin: declare a service in conftest.py, get a started executor as a fixture.

Loaded in every pytest run once mirakuru is installed, so it imports only pytest at the top
and touches nothing unless a fixture made by :func:`service_fixture` is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pytest

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor
    from mirakuru.core.probes import Probe

__all__ = ["describe_service", "service_fixture"]

Scope: TypeAlias = Literal["session", "package", "module", "class", "function"]
#: A probe, or a function building one from the chosen port.
ReadySpec: TypeAlias = "Probe | Callable[[int], Probe] | None"

PORT_PLACEHOLDER = "{port}"

#: Per run: fixture name -> the executor it started last (kept after a failed start).
_SERVICES = pytest.StashKey[dict[str, Any]]()


def service_fixture(
    command: str | Sequence[str],
    ready: ReadySpec = None,
    *,
    scope: Scope = "session",
    name: str | None = None,
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
    """

    def service(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Generator[SimpleExecutor]:
        executor = _start(
            request,
            _reservations(tmp_path_factory),
            command,
            ready,
            timeout=timeout,
            stop_timeout=stop_timeout,
            envvars=envvars,
            executor_kwargs=executor_kwargs,
        )
        try:
            yield executor
        finally:
            try:
                executor.stop()
            finally:
                _services(request.config).pop(request.fixturename or "service", None)

    return pytest.fixture(scope=scope, name=name)(service)


def _needs_port(command: str | Sequence[str], ready: object, envvars: Mapping[str, str]) -> bool:
    parts = [command] if isinstance(command, str) else list(command)
    texts = [*parts, *envvars.values()]
    return callable(ready) or any(PORT_PLACEHOLDER in str(text) for text in texts)


def _reservations(factory: pytest.TempPathFactory) -> Path:
    """A directory shared by every worker of this run (xdist workers' basetemps are siblings)."""
    basetemp = factory.getbasetemp()
    root = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    return root / "mirakuru-ports"


def _start(
    request: pytest.FixtureRequest,
    reservations: Path,
    command: str | Sequence[str],
    ready: ReadySpec,
    *,
    timeout: float | None,
    stop_timeout: float | None,
    envvars: Mapping[str, str] | None,
    executor_kwargs: Mapping[str, Any],
) -> SimpleExecutor:
    from mirakuru.adapter.ports import fill_port, free_port
    from mirakuru.base import Executor, SimpleExecutor

    extra_env = dict(envvars or {})
    port = free_port(reservations) if _needs_port(command, ready, extra_env) else None
    filled: str | list[str] = (
        fill_port(command, port)
        if isinstance(command, str)
        else [fill_port(str(part), port) for part in command]
    )
    probe: Probe | None
    if callable(ready):
        assert port is not None  # a callable ready always asks for a port
        probe = ready(port)
    else:
        probe = ready
    options: dict[str, Any] = {
        "timeout": timeout,
        "stop_timeout": stop_timeout,
        "envvars": {key: fill_port(value, port) for key, value in extra_env.items()},
        **executor_kwargs,
    }
    executor = (
        SimpleExecutor(filled, **options)
        if probe is None
        else Executor(filled, ready=probe, **options)
    )
    executor.port = port  # type: ignore[attr-defined]
    # Recorded before starting, so a failed start-up is explained in the test's report.
    _services(request.config)[request.fixturename or "service"] = executor
    return executor.start()


def _services(config: pytest.Config) -> dict[str, Any]:
    services = config.stash.get(_SERVICES, None)
    if services is None:
        services = config.stash[_SERVICES] = {}
    return services


def describe_service(executor: Any) -> str:
    """The report section for one service: command, port, state, history and output tail."""
    lines = [f"command: {executor.command}"]
    port = getattr(executor, "port", None)
    if port is not None:
        lines.append(f"port: {port}")
    lines.append(f"state: {executor.state.value}")
    history = tuple(executor.history)
    if history:
        lines.append("history:")
        origin = history[0].at
        for change in history:
            detail = f"  ({change.detail})" if getattr(change, "detail", None) else ""
            lines.append(
                f"  +{change.at - origin:8.3f} s  {change.source.value} -> {change.dest.value}"
                f"  [{change.trigger.value}]{detail}"
            )
    tail = list(executor.output_tail())
    lines.append("output tail:" if tail else "output tail: (nothing captured)")
    lines.extend(f"  {line}" for line in tail)
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append a section per service the failed test used, like captured logs."""
    report = yield
    services = item.config.stash.get(_SERVICES, None)
    if services and report.failed:
        used = getattr(item, "fixturenames", ())
        for fixture in used:
            executor = services.get(fixture)
            if executor is not None:
                report.sections.append((f"mirakuru: {fixture}", describe_service(executor)))
    return report
