"""The awaitable side of :class:`~mirakuru.group.ExecutorGroup`: ``astart()``, ``astop()``,
``async with``, and what :func:`~mirakuru.group.astart_all` returns.

Each executor's own ``astart()`` does the work, in one task per executor of an anyio task
group, so services that each need a second are ready together after about a second. The
first failure cancels the starts still waiting (each kills its own tree) and stops those
already up, the last ready first. anyio is imported on first use only.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import threading

    from mirakuru.base import SimpleExecutor
    from mirakuru.group import ExecutorGroup

__all__ = ["AsyncGroupMethods", "GroupStart"]


class AsyncGroupMethods:
    """``astart()``, ``astop()`` and ``async with`` for :class:`ExecutorGroup`."""

    if TYPE_CHECKING:  # what the mixin uses of ExecutorGroup
        _executors: list[SimpleExecutor]
        _after: dict[SimpleExecutor, tuple[SimpleExecutor, ...]]
        _started: list[SimpleExecutor]
        _lock: threading.RLock

        def _check_dependencies(self) -> None: ...

    async def astart(self) -> Self:
        """Start every executor concurrently, each once its dependencies are ready;
        on the first failure, stop them all and raise it (the others as its notes)."""
        import anyio

        __tracebackhide__ = True
        self._check_dependencies()
        pending = [e for e in self._executors if e not in self._started]
        ready = {executor: anyio.Event() for executor in pending}
        failures: dict[SimpleExecutor, BaseException] = {}

        async def start(executor: SimpleExecutor, group: anyio.abc.TaskGroup) -> None:
            for need in self._after[executor]:
                if need in ready:
                    await ready[need].wait()
            try:
                await executor.astart()
            except Exception as error:
                failures[executor] = error
                group.cancel_scope.cancel()
                return
            with self._lock:
                self._started.append(executor)
            ready[executor].set()

        try:
            async with anyio.create_task_group() as group:
                for executor in pending:
                    group.start_soon(start, executor, group)
        except BaseException:
            await self._astop_all()
            raise
        if failures:
            await self._astop_all()
            first_executor, first_error = next(iter(failures.items()))
            for other, error in failures.items():
                if other is not first_executor:
                    first_error.add_note(f"also failed: {other}: {type(error).__name__}: {error}")
            first_error.group_failures = failures  # type: ignore[attr-defined]
            raise first_error
        return self

    async def _astop_all(self) -> list[BaseException]:
        """Stop every started executor, the last ready first; shielded from cancellation."""
        import anyio

        errors: list[BaseException] = []
        with anyio.CancelScope(shield=True):
            while True:
                with self._lock:
                    if not self._started:
                        break
                    executor = self._started.pop()
                try:
                    await executor.astop()
                except Exception as error:
                    errors.append(error)
        return errors

    async def astop(self) -> Self:
        """Stop the started executors, the last one ready first; every one is tried, even
        if this task is cancelled meanwhile (the cancellation follows)."""
        import anyio.lowlevel

        __tracebackhide__ = True
        errors = await self._astop_all()
        await anyio.lowlevel.checkpoint_if_cancelled()
        if errors:
            raise errors[0]
        return self

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()


class GroupStart:
    """A group about to start: ``await`` it for the started group, or ``async with`` it
    to have the group stopped at the end of the block."""

    def __init__(self, group: ExecutorGroup) -> None:
        self._group = group

    def __await__(self) -> Generator[Any, None, ExecutorGroup]:
        return self._group.astart().__await__()

    async def __aenter__(self) -> ExecutorGroup:
        return await self._group.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._group.astop()
