"""What the attempts of one start found, leaf by leaf, for messages and for pacing.

Written on the waiting thread by :func:`~mirakuru.adapter.readiness.evaluate.attempt`,
read on the same thread when the wait reports progress or gives up.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from mirakuru.core.probes import Leaf

__all__ = ["ANSWER", "Findings", "Note", "connect_failure", "quiet"]

#: Told, in a few words, what one attempt found ("connection refused", "last answer 500").
Note = Callable[[str], None]
#: How a note about an HTTP answer begins (any status: the server is up).
ANSWER = "last answer "


def quiet(_: str) -> None:
    """A :data:`Note` that keeps nothing (attempts made outside a start's wait)."""


def connect_failure(code: int) -> str:
    """What a failed connect's ``errno`` means, in lower case: ``connection refused``."""
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.ETIMEDOUT):
        return "connect timed out"
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


class Findings:
    """The last result of each polled leaf, and whether an HTTP server has answered yet."""

    __slots__ = ("answered", "last", "ready")

    def __init__(self) -> None:
        #: Per leaf: what its last attempt found (``connection refused``, ``last answer 500``).
        self.last: dict[Leaf, str] = {}
        #: Per leaf: whether its last attempt succeeded.
        self.ready: dict[Leaf, bool] = {}
        #: An HTTP leaf got an answer (any status): the application is up, so polling it
        #: fast no longer shortens the wait, it only floods the service's log.
        self.answered = False

    def note(self, leaf: Leaf, ready: bool, text: str) -> None:
        """Record one attempt at ``leaf``."""
        self.ready[leaf] = ready
        self.last[leaf] = text
        if text.startswith(ANSWER):
            self.answered = True

    def attempt(self, leaf: Leaf, run: Callable[[Note], bool]) -> bool:
        """``run(note)`` (one attempt at ``leaf``), recording what its last note said."""
        said: list[str] = []
        ready = run(said.append)
        # Nothing said: the kernel vouched that nobody listens (a real connect said so lately).
        text = said[-1] if said else self.last.get(leaf, connect_failure(errno.ECONNREFUSED))
        self.note(leaf, ready, text)
        return ready
