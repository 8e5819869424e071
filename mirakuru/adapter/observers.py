"""Process-wide observers of executor starts (the pytest plugin describes a failed test's).

An observer is called with each executor right after its process is spawned, on the
starting thread. Observers must be quick; one that raises is logged and never breaks a
start. Nothing is kept about the executors themselves: observers keep what they need.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Observer", "add", "notify_start", "remove"]

LOG = logging.getLogger(__name__)

#: Called with the executor whose process was just spawned.
Observer = Callable[[Any], None]

_lock = threading.Lock()
_observers: list[Observer] = []


def add(observer: Observer) -> None:
    """Call ``observer(executor)`` after every future spawn in this process."""
    with _lock:
        _observers.append(observer)


def remove(observer: Observer) -> None:
    """Stop calling ``observer``; removing one never added does nothing."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


def notify_start(executor: object) -> None:
    """Tell every observer that ``executor`` spawned its process."""
    with _lock:
        current = tuple(_observers)  # a snapshot: observers may add or remove others
    for observer in current:
        try:
            observer(executor)
        except Exception:
            LOG.exception("a start observer failed for %s", executor)
