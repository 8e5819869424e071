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

if TYPE_CHECKING:
    from mirakuru._stack_engine import StackRun
    from mirakuru.pytest_plugin.shared import Share
    from mirakuru.stack import Stack

__all__ = ["stack_fixture"]

#: The ports of the whole stack, written by the owner for the attached workers.
_PORTS_FILE = "stack-ports.json"


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
    value has ``port`` (its own) and ``ports`` (every started service's, by name). Under
    pytest-xdist every worker shares one stack, started once. ``file`` names the stack
    file (relative to the declaring conftest); by default the nearest one is used.
    """
    start_dir = _caller_directory()
    _SHARED_DECLARED.append(True)

    def fixture(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Generator[Any]:
        __tracebackhide__ = True
        from mirakuru._stack_engine import StackRun

        stack = _load(file, start_dir)
        label = request.fixturename or service
        known = _services(request.config)
        reservations = str(_reservations(tmp_path_factory))

        def start() -> Any:
            __tracebackhide__ = True
            run = StackRun(stack.spec, [service], reservations=reservations)
            executor = run[service]
            known[label] = executor  # described in the report if the start fails
            run.start()
            executor.ports = dict(run.ports)  # type: ignore[attr-defined]
            executor.stack = run  # type: ignore[attr-defined]
            return executor

        if not _is_worker(request.config):
            owned: Any = start()
            try:
                yield owned
            finally:
                known.pop(label, None)
                owned.stack.stop()
            return
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

    fixture.__name__ = name or f"stack_{service}"
    return pytest.fixture(scope="session", name=name)(fixture)


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
