"""Leak guards: no process started by an executor of this run may outlive its test.

Every executor marks its processes with ``mirakuru_uuid=<pid>:<uuid4>``, where ``<pid>``
is the process that created it. Each pytest process (the controller, or each xdist
worker) therefore checks only tokens starting with its own PID, so workers never judge
each other's running services.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import psutil
import pytest

from mirakuru.base import SimpleExecutor
from tests.helpers import marked_processes, processes_with_token_prefix, wait_until

#: How long a just-killed process may take to disappear before it counts as leaked.
SETTLE = 3.0


def _own_prefix() -> str:
    return f"{os.getpid()}:"


def _describe(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"  pid {process.pid}: {' '.join(process.cmdline())}")
        except psutil.Error:
            lines.append(f"  pid {process.pid}: (gone while describing)")
    return "\n".join(lines)


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(processes, timeout=SETTLE)


def _leftovers(before: set[int]) -> list[psutil.Process]:
    """Our marked processes still alive after a bounded settle, minus those in ``before``."""
    prefix = _own_prefix()

    def new() -> list[psutil.Process]:
        return [p for p in processes_with_token_prefix(prefix) if p.pid not in before]

    wait_until(lambda: not new(), SETTLE)
    return new()


@pytest.fixture(scope="session", autouse=True)
def _session_leak_guard() -> Iterator[None]:
    """Fail the run (as a teardown error) if any of our marked processes survives it."""
    yield
    leaked = _leftovers(set())
    if leaked:
        description = _describe(leaked)
        _kill(leaked)
        pytest.fail(
            "processes started by executors of this test run outlived it:\n" + description,
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _test_leak_guard() -> Iterator[None]:
    """Fail a test that leaves behind a marked process it started."""
    before = {p.pid for p in processes_with_token_prefix(_own_prefix())}
    yield
    leaked = _leftovers(before)
    if leaked:
        description = _describe(leaked)
        _kill(leaked)
        pytest.fail(
            "processes started during this test are still alive:\n" + description,
            pytrace=False,
        )


@pytest.fixture
def assert_gone() -> Iterator[list[SimpleExecutor]]:
    """Executors appended to this list must have no marked process alive at teardown."""
    executors: list[SimpleExecutor] = []
    yield executors
    for executor in executors:
        assert wait_until(functools.partial(_no_marked_processes, executor), SETTLE), (
            f"{executor!r} left processes behind:\n{_describe(marked_processes(executor))}"
        )


def _no_marked_processes(executor: SimpleExecutor) -> bool:
    return not marked_processes(executor)
