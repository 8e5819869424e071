"""Name lookups for polled probes, bounded by the attempt that needs them.

``getaddrinfo`` cannot be given a timeout: a stalled resolver holds the calling thread for
its own timeout (5 s per try with glibc's defaults), far past a start-up budget of 2 s. So a
name is looked up on a helper thread that the attempt waits for only as long as it may take,
and abandons otherwise: the lookup goes on, and the next attempt waits for the same one
instead of starting another. Each name has at most one lookup in flight; an answer is kept
for the process, a failure for :data:`RETRY_FAILED` seconds (a name that does not resolve is
not asked again on every poll, a few milliseconds apart). Addresses written as numbers are
never looked up.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from mirakuru.adapter.clock import monotonic

__all__ = ["RETRY_FAILED", "Lookup", "resolve"]

#: How long a failed lookup stands before the name is looked up again, in seconds.
RETRY_FAILED = 0.5

#: ``getaddrinfo``'s answer: (family, type, proto, canonname, sockaddr) tuples.
Answer = tuple[tuple[Any, ...], ...]
#: Looks ``host``, ``port`` up: ``socket.getaddrinfo`` for streams, or a test's stand-in.
Resolver = Callable[[str, int], Answer]


def _stream_addresses(host: str, port: int) -> Answer:
    return tuple(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class Lookup:
    """One lookup of a name, on its own thread: pending, answered, or failed."""

    __slots__ = ("answer", "done", "error", "finished")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Answer | None = None
        self.error: OSError | None = None
        self.finished = 0.0

    def run(self, resolver: Resolver, host: str, port: int) -> None:
        try:
            self.answer = resolver(host, port)
        except OSError as error:
            self.error = error
        except Exception as error:  # a resolver's bug is a failed lookup, not a dead thread
            self.error = OSError(f"looking up {host!r} failed: {error!r}")
        finally:
            self.finished = monotonic()
            self.done.set()

    def stale(self, now: float) -> bool:
        """Whether a new lookup is due: this one failed long enough ago."""
        return self.done.is_set() and self.error is not None and now - self.finished >= RETRY_FAILED


_lock = threading.Lock()
_lookups: dict[tuple[str, int], Lookup] = {}
#: More names than any test run polls; beyond it the oldest answers are forgotten.
_MOST = 256


def resolve(host: str, port: int, timeout: float, resolver: Resolver | None = None) -> Answer:
    """The stream addresses of ``host``:``port``, waiting at most ``timeout`` seconds.

    Raises :class:`OSError` when the name does not resolve, and :class:`TimeoutError` (an
    ``OSError`` too) when its lookup has not ended in time: it goes on in the background.
    """
    key = (host, port)
    if key not in _lookups:  # a name seen before is no number: skip the check when polling
        numeric = _numeric(host, port)
        if numeric is not None:
            return numeric
    with _lock:  # never held while looking up: only while choosing who looks up
        lookup = _lookups.get(key)
        fresh = lookup is None or lookup.stale(monotonic())
        if fresh:
            lookup = _lookups[key] = Lookup()
            if len(_lookups) > _MOST:
                del _lookups[next(iter(_lookups))]
    assert lookup is not None
    if fresh:
        _begin(lookup, resolver or _stream_addresses, host, port)
    if not lookup.done.wait(max(0.0, timeout)):
        raise TimeoutError(f"looking up {host!r} takes longer than {timeout:.3g} s")
    if lookup.error is not None:
        raise lookup.error
    assert lookup.answer is not None
    return lookup.answer


def _begin(lookup: Lookup, resolver: Resolver, host: str, port: int) -> None:
    try:
        threading.Thread(
            target=lookup.run, args=(resolver, host, port), name="mirakuru-resolve", daemon=True
        ).start()
    except RuntimeError:  # no new threads at interpreter shutdown: look it up here
        lookup.run(resolver, host, port)


def _numeric(host: str, port: int) -> Answer | None:
    """The addresses of a host written as numbers (never a lookup), else None."""
    try:
        return tuple(
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        )
    except (OSError, UnicodeError):
        return None


def _forget_pending() -> None:
    """In a forked child: lookups in flight ran on the parent's threads, which are gone."""
    global _lock  # noqa: PLW0603 - the parent's lock may have been held at fork
    _lock = threading.Lock()
    for key, lookup in list(_lookups.items()):
        if not lookup.done.is_set():
            del _lookups[key]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pending)
