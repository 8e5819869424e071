"""Keeping services between runs, in pytest: the ``--mirakuru-reuse`` option, what a fixture
does with it, and the terminal summary that says what was kept and how to end it.

With reuse on (and ``CI`` unset), a stack fixture asks the stack's supervisor for its
service instead of starting it (:mod:`mirakuru._reuse`); the service outlives the run. Under
pytest-xdist every worker asks on its own, and the workers tell the controller what they
kept, so its summary can list it.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mirakuru._reuse import Lease
    from mirakuru.core.reuse import Setting
    from mirakuru.core.stack import StackSpec

__all__ = ["held", "keep", "reuse_setting"]

_SETTING = pytest.StashKey["Setting"]()
#: stack file -> service -> {"pid", "port", "verdict"}: what this run kept.
_KEPT = pytest.StashKey[dict[str, dict[str, dict[str, Any]]]]()
#: stack file -> why its services could not be kept (they were started as usual).
_UNAVAILABLE = pytest.StashKey[dict[str, str]]()
_WORKER_KEY = "mirakuru_kept"
#: Added to the services' own timeouts, for the wait on another run starting them.
_SLACK = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--mirakuru-reuse``."""
    group = parser.getgroup("mirakuru")
    group.addoption(
        "--mirakuru-reuse",
        action="store_true",
        default=False,
        help="keep stack services running after the run and attach to them in the next one"
        " (as MIRAKURU_REUSE=1 does); never when CI is set. End them with: mirakuru down",
    )


def reuse_setting(config: pytest.Config) -> Setting:
    """Whether this run keeps services (read once per run; a bad value is a usage error)."""
    from mirakuru.core.reuse import idle_limit, setting

    found = config.stash.get(_SETTING, None)
    if found is None:
        option = bool(config.getoption("mirakuru_reuse", False))
        try:
            found = setting(os.environ, option)
            if found.on:
                idle_limit(os.environ)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
        config.stash[_SETTING] = found
    return found


def pytest_configure(config: pytest.Config) -> None:
    """A bad ``MIRAKURU_REUSE`` or ``MIRAKURU_REUSE_IDLE`` stops the run before any test."""
    reuse_setting(config)


def keep(request: pytest.FixtureRequest, spec: StackSpec, service: str) -> Lease | None:
    """A lease on ``service`` of ``spec``, kept by the stack's supervisor; None when
    nothing can be kept for this stack (the caller then starts the service as usual)."""
    __tracebackhide__ = True
    from mirakuru._reuse import KeptFailed, ReuseUnavailable, attach
    from mirakuru.core.reuse import idle_limit

    order = spec.order([service])
    budget = sum(spec.service(n).timeout + spec.service(n).stop_timeout for n in order)
    try:
        lease = attach(spec, [service], idle=idle_limit(os.environ), timeout=budget + _SLACK)
    except ReuseUnavailable as why:
        unavailable = request.config.stash.setdefault(_UNAVAILABLE, {})
        unavailable[spec.source] = str(why)
        return None
    except KeptFailed as failure:
        tail = "".join(f"\n    {line}" for line in failure.output_tail)
        raise KeptFailed(f"{failure}" + (f"; last output:{tail}" if tail else "")) from None
    _note(request.config, spec.source, lease)
    return lease


def held(request: pytest.FixtureRequest, lease: Lease, service: str) -> Generator[Any]:
    """Yield the kept ``service`` (described in a failed test's report); close the lease."""
    from mirakuru.pytest_plugin.registry import _services

    label = request.fixturename or service
    known = _services(request.config)
    kept = known[label] = lease.services[service]
    try:
        yield kept
    finally:
        known.pop(label, None)
        _note(request.config, lease.state.stack_file, lease)  # a test may have restarted it
        lease.close()


def _note(config: pytest.Config, source: str, lease: Lease) -> None:
    kept = config.stash.setdefault(_KEPT, {})
    services = kept.setdefault(source, {})
    for name, view in lease.services.items():
        if view.pid is None:
            services.pop(name, None)  # a job that completed, or a test stopped it
            continue
        verdict = "attached" if view.attached else "started"
        known = services.get(name)
        if known is not None and known["verdict"] == "started" and known["pid"] == view.pid:
            verdict = "started"
        services[name] = {"pid": view.pid, "port": view.port, "verdict": verdict}
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKER_KEY] = kept  # the controller's summary lists it


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: a worker is done; what it kept goes into the controller's summary."""
    from_worker = getattr(node, "workeroutput", {}).get(_WORKER_KEY) or {}
    kept = node.config.stash.setdefault(_KEPT, {})
    for source, services in from_worker.items():
        mine = kept.setdefault(source, {})
        for name, record in services.items():
            if name not in mine or mine[name]["verdict"] == "attached":
                mine[name] = record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say what was kept and how to end it; or, once, why reuse was off."""
    found = config.stash.get(_SETTING, None)
    if found is not None and found.requested and not found.on:
        terminalreporter.write_line(
            f"mirakuru: reuse is off because {found.why_off}: services were started and"
            " stopped as usual"
        )
    for source, why in sorted(config.stash.get(_UNAVAILABLE, {}).items()):
        terminalreporter.write_line(f"mirakuru: not kept ({source}): {why}")
    kept = config.stash.get(_KEPT, {})
    if not kept:
        return
    terminalreporter.write_sep("-", "mirakuru: kept running for the next run")
    for source, services in sorted(kept.items()):
        listed = ", ".join(
            f"{name} (pid {record['pid']}"
            + (f", port {record['port']}" if record["port"] is not None else "")
            + f", {record['verdict']})"
            for name, record in services.items()
        )
        terminalreporter.write_line(f"{source}: {listed}")
    ends = [f"mirakuru down -f {source}" for source in sorted(kept) if "::" not in source]
    every = "mirakuru down --all"
    terminalreporter.write_line(
        f"end them with: {'; '.join(ends)} (or every kept service: {every})"
        if ends
        else f"end them with: {every}"
    )
