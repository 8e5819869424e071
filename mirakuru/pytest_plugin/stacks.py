"""``stack_fixture``: a service of ``mirakuru.toml`` as a session fixture, dependencies first.

The stack file is the one ``mirakuru up`` would find from the conftest's directory. Under
pytest-xdist the stack is started once for all workers: the first worker to need it starts
it (and its dependencies) under the run-wide lock of :mod:`.shared`, the others attach to it,
and the owner stops the whole stack once the last worker is done.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from mirakuru.pytest_plugin.reuse import held, keep, reuse_setting

if TYPE_CHECKING:
    from mirakuru._stack_engine import StackRun
    from mirakuru.core.stack import StackSpec

__all__ = ["stack_fixture"]

#: Every service of the shared run, written by the owner for the attached workers.
_SERVICES_FILE = "stack-services.json"
#: Per xdist worker: stack file -> its hold on the run of it that every worker shares.
_SHARES = pytest.StashKey[dict[str, "_HeldShare"]]()
#: Per run, outside xdist: stack file -> the one run of it that the stack fixtures share.
_RUNS = pytest.StashKey[dict[str, "_Held"]]()


class _WholeStack:
    """What a shared service's owner stops at the end: the whole stack, not one service."""

    def __init__(self, run: StackRun, name: str) -> None:
        self.run = run
        self.name = name

    def running(self) -> bool:
        return any(self.run[name].running() for name in self.run)

    def stop(self) -> None:
        self.run.stop()


def _caller_directory() -> Path:
    # The conftest (or module) that declares the fixture: the stack file is searched from
    # there, so the working directory pytest was started in does not matter.
    frame = sys._getframe(2)
    source = frame.f_globals.get("__file__")
    return Path(source).resolve().parent if source else Path.cwd()


def _load(file: str | os.PathLike[str] | None, start: Path) -> StackSpec:
    # The declaration only: with reuse on, nothing in this process runs a stack.
    from mirakuru.adapter.stackfile import find_stack_file, load_stack

    if file is None:
        return load_stack(find_stack_file(start))
    path = Path(file)
    return load_stack(path if path.is_absolute() else start / path)


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
                yield from held(request, lease, service)
                return
        if _is_worker(request.config):
            yield from _shared(request, tmp_path_factory, stack, service)
        else:
            yield from _in_process(request, tmp_path_factory, stack, service)

    fixture.__name__ = name or f"stack_{service}"
    fixture._mirakuru_stack = _Declared(service, file, start_dir)  # type: ignore[attr-defined]
    return pytest.fixture(scope="session", name=name)(fixture)


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
    stack: StackSpec,
    service: str,
) -> Generator[Any]:
    """One run per stack file for the session: a later fixture adds its service to it."""
    __tracebackhide__ = True
    from mirakuru._stack_engine import StackRun

    label = request.fixturename or service
    known = _services(request.config)
    runs = request.config.stash.setdefault(_RUNS, {})
    held = runs.get(stack.source)
    if held is None:
        run = StackRun(stack, [service], reservations=str(_reservations(tmp_path_factory)))
        known[label] = run[service]  # described in the report if the start fails
        run.start()
        held = runs[stack.source] = _Held(run)
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
            runs.pop(stack.source, None)
            held.run.stop()


def _shared(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stack: StackSpec,
    service: str,
) -> Generator[Any]:
    """Under pytest-xdist: the first worker starts every service of the stack that the
    selected tests use (so one run holds them all), the other workers attach to it."""
    __tracebackhide__ = True
    label = request.fixturename or service
    known = _services(request.config)
    shares = request.config.stash.setdefault(_SHARES, {})
    held = shares.get(stack.source)
    if held is None:
        names = _wanted(request.session, stack.source, service)
        held = shares[stack.source] = _HeldShare(request, tmp_path_factory, stack, names)
    if not held.has(service):
        # Asked for outside the tests' fixtures (getfixturevalue): this worker's own run.
        yield from _in_process(request, tmp_path_factory, stack, service)
        return
    known[label] = provided = held.provide(service)
    held.users += 1
    try:
        yield provided
    finally:
        known.pop(label, None)
        held.users -= 1
        if held.users == 0:
            shares.pop(stack.source, None)
            held.share.release()


def _wanted(session: pytest.Session, path: str, service: str) -> list[str]:
    """``service`` and every other service of the stack at ``path`` that a selected test's
    fixtures name (every worker collects the same tests, so all find the same names)."""
    names = {service}
    for item in session.items:
        info = getattr(item, "_fixtureinfo", None)
        for chain in getattr(info, "name2fixturedefs", {}).values():
            declared = getattr(chain[-1].func, "_mirakuru_stack", None)
            if isinstance(declared, _Declared) and declared.path() == path:
                names.add(declared.service)
    return sorted(names)


class _Declared:
    """Which service of which stack file a stack fixture names."""

    def __init__(self, service: str, file: str | os.PathLike[str] | None, start: Path) -> None:
        self.service = service
        self.file = file
        self.start = start
        self._path: str | None = None

    def path(self) -> str | None:
        """The stack file's path as :meth:`Stack.load` records it (None: none is found)."""
        if self._path is None:
            from mirakuru.adapter.stackfile import find_stack_file
            from mirakuru.core.stack import StackError

            try:
                chosen = self.start / self.file if self.file is not None else self.start
                found = find_stack_file(chosen) if chosen.is_dir() else chosen.absolute()
            except StackError:
                return None
            self._path = os.path.normpath(found)
        return self._path


class _HeldShare:
    """This worker's hold on the stack's shared run (as its owner, or attached to it)."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory,
        stack: StackSpec,
        names: list[str],
    ) -> None:
        __tracebackhide__ = True
        from mirakuru._stack_engine import StackRun
        from mirakuru.pytest_plugin.shared import Share, write_json

        order = stack.order(names)
        from mirakuru import __version__

        budget = sum(stack.service(n).timeout + stack.service(n).stop_timeout for n in order)
        prints = [stack.fingerprint(name, __version__) for name in order]
        digest = hashlib.sha256("\0".join([stack.source, *prints]).encode()).hexdigest()[:16]
        self.share = Share(
            _shared_root(tmp_path_factory),
            f"stack {stack.source}",
            lock_timeout=budget + 60,
            drain_timeout=_LAST_WORKER_WAIT,
            key=f"stack-{digest}",
        )
        self.users = 0
        reservations = str(_reservations(tmp_path_factory))
        known = _services(request.config)

        def start() -> Any:
            __tracebackhide__ = True
            run = StackRun(stack, names, reservations=reservations)
            known[request.fixturename or names[0]] = run[names[0]]  # in the report if it fails
            run.start()
            # Written before acquire() publishes the run (still under the share's lock): a
            # worker that attaches the moment it can must find the listing complete.
            write_json(listing, _listing(run))
            return _present(run, names[0])

        listing = self.share.root / _SERVICES_FILE
        provided: Any = self.share.acquire(start)
        self.run: StackRun | None = getattr(provided, "stack", None)
        if self.run is not None:
            # Share.release stops what it holds: make that the whole stack.
            self.share.executor = cast("Any", _WholeStack(self.run, names[0]))
        self.listing: dict[str, Any] = json.loads(listing.read_text())

    def has(self, service: str) -> bool:
        return service in self.listing["services"]

    def provide(self, service: str) -> Any:
        """The executor (on the owner) or a view of it (elsewhere), with every port."""
        if self.run is not None:
            return _present(self.run, service)
        from mirakuru.pytest_plugin.shared import SharedService

        view: Any = SharedService(service, self.listing["services"][service])
        view.ports = dict(self.listing["ports"])
        return view


def _listing(run: StackRun) -> dict[str, Any]:
    """What the attached workers need to know of each service of the owner's run."""
    import psutil

    from mirakuru.pytest_plugin.shared import _identity

    me = os.getpid()
    services = {}
    for name in run:
        process = run[name].process
        pid = process.pid if process is not None else -1
        with contextlib.suppress(psutil.Error):
            services[name] = {
                "command": run[name].command,
                "port": run.ports.get(name),
                "pid": pid,
                "pid_started": _identity(pid) if pid > 0 else None,
                "owner_pid": me,
                "owner_started": _identity(me),
                "owner_worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                "tail": run[name].output_tail(),
            }
    return {"ports": dict(run.ports), "services": services}
