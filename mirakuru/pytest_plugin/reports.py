"""What a failed test's report says about its services: one section per service it used or
started, with the command, port, state, history and output tail.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Generator
from typing import Any

import pytest

from mirakuru.pytest_plugin.registry import _SERVICES

__all__ = ["describe_service"]

#: Per test: the executors already running when its setup began.
_RUNNING_BEFORE = pytest.StashKey[set[int]]()
#: The executors started since the current test's setup began (stopped ones too), or None
#: between tests; filled by a start observer so its failure report can describe them.
_STARTED_IN_TEST: list[list[_Started] | None] = [None]


def describe_service(executor: Any, *, tail_shown: bool = False) -> str:
    """The report section for one service: command, port, state, history and output tail."""
    lines = [f"command: {executor.command}"]
    port = getattr(executor, "port", None)
    if port is not None:
        lines.append(f"port: {port}")
    owner = getattr(executor, "owner_pid", None)
    if owner is not None:
        lines.append(f"shared: started by another worker (pid {owner})")
    keeper = getattr(executor, "supervisor_pid", None)
    if keeper is not None:
        how = "attached to" if executor.attached else "started by this run"
        lines.append(f"kept: by supervisor pid {keeper} between runs ({how})")
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
    registry = sys.modules.get("mirakuru.adapter.guard.registry")
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
