"""The awaitable API of every executor: ``astart()``, ``astop()``, ``akill()``, ``async with``.

A mixin of :class:`~mirakuru.base.SimpleExecutor`. The methods do what their blocking
namesakes do (same lifecycle, history, listeners, errors and return values) without
blocking the event loop; the work lives in :mod:`mirakuru._astart`, imported on first use
so that ``import mirakuru`` and the blocking API never import anyio.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from mirakuru.base import SimpleExecutor

__all__ = ["AsyncMethods"]


def _missing_anyio(error: ImportError) -> ImportError:
    return ImportError(
        "mirakuru's async API needs anyio: pip install 'mirakuru[async]'"
        f" (importing it failed: {error})"
    )


class AsyncMethods:
    """``astart()``, ``astop()``, ``akill()`` and ``async with`` for :class:`SimpleExecutor`."""

    async def astart(self) -> Self:
        """:meth:`~SimpleExecutor.start`, awaited: spawn off the loop, then await readiness.

        Runs on asyncio and trio (through anyio). Cancelling it (a timeout, a failing
        sibling task) kills the process tree before the cancellation goes on, and leaves
        the executor ``failed`` (or ``stopped``).
        """
        try:
            from mirakuru import _astart
        except ImportError as error:
            raise _missing_anyio(error) from error
        await _astart.astart(self._as_executor())
        return self

    async def astop(
        self,
        stop_signal: int | None = None,
        expected_returncode: int | None = None,
        *,
        sig: int | None = None,
        exp_sig: int | None = None,
    ) -> Self:
        """:meth:`~SimpleExecutor.stop`, awaited: the stop runs in a worker thread and
        finishes even if this task is cancelled meanwhile (the cancellation follows)."""
        try:
            from mirakuru import _astart
        except ImportError as error:
            raise _missing_anyio(error) from error
        executor = self._as_executor()
        await _astart.finish_anyway(
            lambda: executor.stop(stop_signal, expected_returncode, sig=sig, exp_sig=exp_sig)
        )
        return self

    async def akill(self, sig: int | None = None) -> Self:
        """:meth:`~SimpleExecutor.kill` (waiting for the tree to go), awaited; finishes
        even if this task is cancelled meanwhile."""
        try:
            from mirakuru import _astart
        except ImportError as error:
            raise _missing_anyio(error) from error
        executor = self._as_executor()
        await _astart.finish_anyway(lambda: executor.kill(sig=sig))
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

    def _as_executor(self) -> SimpleExecutor:
        return self  # type: ignore[return-value]  # the mixin lives only in SimpleExecutor
