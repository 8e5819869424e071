"""``stack_fixture``: a service of ``mirakuru.toml`` as a session fixture, dependencies first.

The stack file is the one ``mirakuru up`` would find from the conftest's directory. Under
pytest-xdist the stack is started once for all workers: the first worker to need it starts
it (and its dependencies) under the run-wide lock of :mod:`.shared`, the others attach to it,
and the owner stops the whole stack once the last worker is done.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from mirakuru.pytest_plugin.registry import (
    _LAST_WORKER_WAIT,
    _SHARED_DECLARED,
    _is_worker,
    _reservations,
    _services,
    _shared_root,
)
from mirakuru.pytest_plugin.reuse import keep, reuse_setting

if TYPE_CHECKING:
    from mirakuru._reuse import Lease
    from mirakuru._stack_engine import StackRun
    from mirakuru.pytest_plugin.shared import Share
    from mirakuru.stack import Stack

__all__ = ["stack_fixture"]

#: The ports of the whole stack, written by the owner for the attached workers.
_PORTS_FILE = "stack-ports.json"
#: Per run, outside xdist: stack file -> the one run of it that the stack fixtures share.
_RUNS = pytest.StashKey[dict[str, "_Held"]]()


class _WholeStack:
    """What a shared service's owner stops at the end: the whole stack, not one service."""

    def __init__(self, run: StackRun, name: str) -> None:
        self.run = run
        self.name = name

    def running(self) -> bool:
        return self.run[self.name].running()

    def stop(self) -> None:
        self.run.stop()


def _caller_directory() -> Path:
    # The conftest (or module) that declares the fixture: the stack file is searched from
    # there, so the working directory pytest was started in does not matter.
    frame = sys._getframe(2)
    source = frame.f_globals.get("__file__")
    return Path(source).resolve().parent if source else Path.cwd()


def _load(file: str | os.PathLike[str] | None, start: Path) -> Stack:
    from mirakuru.adapter.stackfile import find_stack_file
    from mirakuru.stack import Stack

    if file is None:
        return Stack.load(find_stack_file(start))
    path = Path(file)
    return Stack.load(path if path.is_absolute() else start / path)


def stack_fixture(
    service: str, *, file: str | os.PathLike[str] | None = None, name: str | None = None
) -> Any:
    """A session fixture giving the started executor of ``service`` from the stack file.

    Its dependencies are started first, as ``mirakuru up service`` would; the fixture's
    value has ``port`` (its own) and ``ports`` (every started service's, by name). Fixtures
    naming services of one stack share one run of it, so a dependency they have in common
    starts once. Under pytest-xdist every worker shares one stack, started once. With
    reuse on (``--mirakuru-reuse`` or ``MIRAKURU_REUSE=1``, never under ``CI``) the stack's
    supervisor keeps the service between runs. ``file`` names the stack file (relative to
    the declaring conftest); by default the nearest one is used.
    """
    start_dir = _caller_directory()
    _SHARED_DECLARED.append(True)

    def fixture(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Generator[Any]:
        __tracebackhide__ = True
        stack = _load(file, start_dir)
        if reuse_setting(request.config).on:
            lease = keep(request, stack, service)
            if lease is not None:
                yield from _kept(request, lease, service)
                return
        if _is_worker(request.config):
            yield from _shared(request, tmp_path_factory, stack, service)
        else:
            yield from _in_process(request, tmp_path_factory, stack, service)

    fixture.__name__ = name or f"stack_{service}"
    return pytest.fixture(scope="session", name=name)(fixture)


def _kept(request: pytest.FixtureRequest, lease: Lease, service: str) -> Generator[Any]:
    label = request.fixturename or service
    known = _services(request.config)
    kept = known[label] = lease.services[service]
    try:
        yield kept
    finally:
        known.pop(label, None)
        lease.close()


class _Held:
    """This process's run of one stack, and how many fixtures still use it."""

    def __init__(self, run: StackRun) -> None:
        self.run = run
        self.users = 0


def _present(run: StackRun, service: str) -> Any:
    executor: Any = run[service]
    executor.ports = dict(run.ports)
    executor.stack = run
    return executor


def _in_process(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stack: Stack,
    service: str,
) -> Generator[Any]:
    """One run per stack file for the session: a later fixture adds its service to it."""
    __tracebackhide__ = True
    from mirakuru._stack_engine import StackRun

    label = request.fixturename or service
    known = _services(request.config)
    runs = request.config.stash.setdefault(_RUNS, {})
    held = runs.get(stack.path)
    if held is None:
        run = StackRun(stack.spec, [service], reservations=str(_reservations(tmp_path_factory)))
        known[label] = run[service]  # described in the report if the start fails
        run.start()
        held = runs[stack.path] = _Held(run)
    elif service not in held.run:
        held.run.add([service])
    known[label] = executor = _present(held.run, service)
    held.users += 1
    try:
        yield executor
    finally:
        known.pop(label, None)
        held.users -= 1
        if held.users == 0:
            runs.pop(stack.path, None)
            held.run.stop()


def _shared(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stack: Stack,
    service: str,
) -> Generator[Any]:
    """Under pytest-xdist: the first worker starts the stack, the others attach to it."""
    __tracebackhide__ = True
    from mirakuru._stack_engine import StackRun

    label = request.fixturename or service
    known = _services(request.config)
    reservations = str(_reservations(tmp_path_factory))

    def start() -> Any:
        __tracebackhide__ = True
        run = StackRun(stack.spec, [service], reservations=reservations)
        known[label] = run[service]  # described in the report if the start fails
        run.start()
        return _present(run, service)

    share = _share(request, tmp_path_factory, stack, service)
    provided: Any = share.acquire(start)
    run: StackRun | None = getattr(provided, "stack", None)
    if run is not None:
        (share.root / _PORTS_FILE).write_text(json.dumps(run.ports))
        # Share.release stops what it holds: make that the whole stack.
        share.executor = cast("Any", _WholeStack(run, service))
    else:
        provided.ports = json.loads((share.root / _PORTS_FILE).read_text())
    known[label] = provided
    try:
        yield provided
    finally:
        known.pop(label, None)
        share.release()


def _share(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stack: Stack,
    service: str,
) -> Share:
    from mirakuru.pytest_plugin.shared import Share

    order = stack.spec.order([service])
    budget = sum(stack.service(n).timeout + stack.service(n).stop_timeout for n in order)
    # One share per stack file and service: a hash keeps the directory name short and safe.
    key = stack.fingerprint(service)[:16]
    return Share(
        _shared_root(tmp_path_factory),
        f"stack-{service}-{key}",
        lock_timeout=budget + 60,
        drain_timeout=_LAST_WORKER_WAIT,
    )
