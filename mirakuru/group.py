"""Start several executors at once, in threads, honouring declared dependencies.

Each executor's own ``start()`` does the work (and the waiting), so three services that each
need a second to be ready are all ready after about a second. When one fails, the ones
already up are stopped and the ones still starting are cut short, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

from mirakuru._agroup import AsyncGroupMethods, GroupStart

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor

__all__ = ["ExecutorGroup", "astart_all", "start_all"]


class ExecutorGroup(AsyncGroupMethods):
    """Executors started concurrently (after their dependencies) and stopped in reverse order.

    ``after`` maps an executor to the executors that must be ready before it starts.
    """

    def __init__(
        self,
        *executors: SimpleExecutor,
        after: Mapping[SimpleExecutor, Iterable[SimpleExecutor]] | None = None,
    ) -> None:
        self._executors: list[SimpleExecutor] = []
        self._after: dict[SimpleExecutor, tuple[SimpleExecutor, ...]] = {}
        self._started: list[SimpleExecutor] = []
        # Re-entrant: a signal handler may stop the group while this thread is inside start().
        self._lock = threading.RLock()
        for executor in executors:
            self.add(executor)
        for executor, needs in (after or {}).items():
            if executor not in self._after:
                self.add(executor)
            self._after[executor] = (*self._after[executor], *needs)
        self._check_dependencies()

    @property
    def executors(self) -> tuple[SimpleExecutor, ...]:
        """Every executor of the group, in the order they were added."""
        return tuple(self._executors)

    def add(self, executor: SimpleExecutor, *, after: Iterable[SimpleExecutor] = ()) -> Self:
        """Add ``executor``, to be started once every executor in ``after`` is ready.

        The executors in ``after`` may be added later; :meth:`start` checks them all.
        """
        if executor in self._after:
            raise ValueError(f"{executor} is already in the group")
        self._executors.append(executor)
        self._after[executor] = tuple(after)
        return self

    def _check_dependencies(self) -> None:
        for executor, needs in self._after.items():
            for need in needs:
                if need not in self._after:
                    raise ValueError(f"{executor} depends on {need}, which is not in the group")
        visiting: set[SimpleExecutor] = set()
        done: set[SimpleExecutor] = set()

        def visit(executor: SimpleExecutor, path: tuple[SimpleExecutor, ...]) -> None:
            if executor in done:
                return
            if executor in visiting:
                cycle = " -> ".join(str(e) for e in (*path, executor))
                raise ValueError(f"the group's dependencies form a cycle: {cycle}")
            visiting.add(executor)
            for need in self._after[executor]:
                visit(need, (*path, executor))
            visiting.discard(executor)
            done.add(executor)

        for executor in self._executors:
            visit(executor, ())

    def start(self) -> Self:
        """Start every executor, each as soon as its dependencies are ready; fail fast."""
        __tracebackhide__ = True
        self._check_dependencies()
        results: queue.Queue[tuple[SimpleExecutor, BaseException | None]] = queue.Queue()
        pending = [e for e in self._executors if e not in self._started]
        in_flight: set[SimpleExecutor] = set()
        ready: set[SimpleExecutor] = set(self._started)
        failures: dict[SimpleExecutor, BaseException] = {}
        cut: set[SimpleExecutor] = set()

        def run(executor: SimpleExecutor) -> None:
            try:
                executor.start()
            except BaseException as error:
                results.put((executor, error))
            else:
                results.put((executor, None))

        while pending or in_flight:
            if not failures:
                for executor in [e for e in pending if set(self._after[e]) <= ready]:
                    pending.remove(executor)
                    in_flight.add(executor)
                    threading.Thread(
                        target=run, args=(executor,), name=f"mirakuru-start-{executor}", daemon=True
                    ).start()
            if not in_flight:
                break
            executor, error = results.get()
            in_flight.discard(executor)
            if error is None:
                ready.add(executor)
                with self._lock:
                    self._started.append(executor)
                if failures:
                    # It finished starting after another failed: it must not stay up.
                    self._stop_quietly(executor)
                continue
            if executor in cut:
                continue  # its failure is the consequence of being cut short
            if not failures:
                cut = self._cut_short(in_flight)
            failures[executor] = error
        if failures:
            self.stop()
            first_executor, first_error = next(iter(failures.items()))
            for other, err in failures.items():
                if other is not first_executor:
                    first_error.add_note(f"also failed: {other}: {type(err).__name__}: {err}")
            first_error.group_failures = failures  # type: ignore[attr-defined]
            raise first_error
        return self

    @staticmethod
    def _cut_short(executors: Iterable[SimpleExecutor]) -> set[SimpleExecutor]:
        """End the processes of executors still starting, so their start() returns at once."""
        cut = set()
        for executor in executors:
            process = executor.process
            if process is None:
                continue
            # kill(wait=False) never blocks on the start() holding the executor: it signals
            # the tree, and that start() fails at once and cleans up after itself.
            with contextlib.suppress(Exception):
                executor.kill(wait=False)
            cut.add(executor)
        return cut

    @staticmethod
    def _stop_quietly(executor: SimpleExecutor) -> None:
        with contextlib.suppress(Exception):
            executor.stop()

    def stop(self) -> Self:
        """Stop the started executors, the last one ready first; every one is tried."""
        __tracebackhide__ = True
        errors: list[BaseException] = []
        while True:
            with self._lock:
                if not self._started:
                    break
                executor = self._started.pop()
            try:
                executor.stop()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __iter__(self) -> Iterator[SimpleExecutor]:
        return iter(self._executors)

    def __len__(self) -> int:
        return len(self._executors)


def start_all(
    *executors: SimpleExecutor,
    after: Mapping[SimpleExecutor, Iterable[SimpleExecutor]] | None = None,
) -> ExecutorGroup:
    """Start ``executors`` concurrently; the returned group is a context manager stopping them."""
    __tracebackhide__ = True
    return ExecutorGroup(*executors, after=after).start()


def astart_all(
    *executors: SimpleExecutor,
    after: Mapping[SimpleExecutor, Iterable[SimpleExecutor]] | None = None,
) -> GroupStart:
    """:func:`start_all`, awaited: ``await astart_all(...)`` gives the started group, and
    ``async with astart_all(...) as group:`` also stops it at the end of the block."""
    return GroupStart(ExecutorGroup(*executors, after=after))
