"""Things a waiter can be woken by: file descriptors that become readable."""

from __future__ import annotations

from typing import Protocol

__all__ = ["EventSource", "Hint"]


class EventSource(Protocol):
    """A readable file descriptor and what to do when it is readable."""

    def fileno(self) -> int:
        """The descriptor to poll."""
        ...

    def on_readable(self) -> bool:
        """Consume what is there; return False once the source is exhausted (EOF)."""
        ...


class Hint(EventSource, Protocol):
    """A source whose event says readiness is probably moments away (a directory watch);
    the run closes it when the wait that asked for it ends."""

    def close(self) -> None:
        """Free the descriptor."""
        ...
