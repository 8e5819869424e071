"""Holding off Ctrl-C (and a raising SIGTERM handler) over a few lines that must not be cut.

Between ``Popen()`` returning and the executor recording the process, a ``KeyboardInterrupt``
would lose the only handle on a running child; between taking a lock with a timeout and
entering the ``try`` that releases it, it would leave the lock held for good. :func:`deferred`
covers such stretches: on the main thread (the only one Python runs signal handlers on) the
Python handlers of SIGINT and SIGTERM are swapped for one that only notes the signal, and
the signals noted are raised again, to the original handlers, when the stretch ends. Only
short bookkeeping is deferred, never a wait: a stop that waits out its grace period stays
interruptible.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["deferred"]

#: The signals whose Python handlers typically raise (KeyboardInterrupt, a CLI's exit).
_DEFERRED = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)
#: signal's C functions, without the wrappers that turn values into enums (15 times dearer).
_C: Any = sys.modules.get("_signal", signal)


class deferred:  # noqa: N801 - used like a function: ``with deferred():``
    """Run the body with SIGINT and SIGTERM noted, not handled; handle them afterwards.

    With ``later`` (in a finalizer, whose exceptions Python drops), the signals are only
    flagged again when the body ends, so their handlers run at the main thread's next
    check, with luck outside the finalizer.
    """

    __slots__ = ("_arrived", "_later", "_previous")

    def __init__(self, *, later: bool = False) -> None:
        self._later = later
        self._previous: list[tuple[int, Any]] = []
        self._arrived: list[int] = []

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self._arrived.append(signum)

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers never run on this thread: nothing can interrupt it
        try:
            for sig in _DEFERRED:
                handler = _C.getsignal(sig)
                if callable(handler):  # SIG_DFL, SIG_IGN and C handlers raise nothing here
                    _C.signal(sig, self._note)
                    self._previous.append((sig, handler))
        except ValueError:  # not the main interpreter: its handlers are not ours to swap
            pass

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _restore(self._previous)
        for signum in self._arrived:
            if self._later:
                _thread.interrupt_main(signal.Signals(signum))
            else:
                _C.raise_signal(signum)  # the original handler runs now, here


def _restore(previous: list[tuple[int, Any]]) -> None:
    # Nested, so that a signal handled as soon as its handler is back (and raising) cannot
    # leave another signal's handler swapped for good.
    if not previous:
        return
    (sig, handler), rest = previous[0], previous[1:]
    try:
        _C.signal(sig, handler)
    finally:
        _restore(rest)
