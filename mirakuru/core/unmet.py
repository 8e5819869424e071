"""What a start is still waiting for, in words: the probe not yet satisfied and its last result.

Pure phrasing: the adapter records each attempt's result, the facade hands them here, and
the sentence goes into a :class:`~mirakuru.exceptions.TimeoutExpired`, a progress log line
or the command line's report, e.g. ``tcp 127.0.0.1:6399: connection refused (412 attempts)``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Collection, Mapping

from mirakuru.core.probes import AllOf, AnyOf, Banner, Http, Leaf, PidFile, Probe, SdNotify, Tcp

__all__ = ["attempts_phrase", "explain", "label"]

#: What a leaf that no attempt reached yet says (an earlier member of ``all_of`` held it up).
NOT_TRIED = "not tried yet"
_STREAMS = ("stdout", "stderr")


def attempts_phrase(attempts: int) -> str:
    """``1 attempt``, ``412 attempts``."""
    return f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"


def label(leaf: Leaf) -> str:
    """A leaf in a few words: ``tcp 127.0.0.1:6399``, ``http 127.0.0.1:8000/health``."""
    if isinstance(leaf, Tcp):
        host = f"[{leaf.host}]" if ":" in leaf.host else leaf.host
        return f"tcp {host}:{leaf.port}"
    if isinstance(leaf, Http):
        parts = urllib.parse.urlsplit(leaf.url)
        where = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        verb = "" if leaf.method == "HEAD" else f" {leaf.method}"
        return f"{parts.scheme}{verb} {where}"
    if isinstance(leaf, PidFile):
        return f"pid file {leaf.path}"
    if isinstance(leaf, Banner):
        return f"banner {leaf.pattern.pattern!r}"
    if isinstance(leaf, SdNotify):
        return "READY=1 on $NOTIFY_SOCKET"
    return f"unix socket {leaf.path}"


def _banner(leaf: Banner, captured: Collection[str]) -> str:
    watched = [name for name in _STREAMS if name in leaf.streams]
    text = f"{label(leaf)} not seen on {' or '.join(watched)}"
    others = [name for name in _STREAMS if name not in leaf.streams]
    asides = [
        f"{name} is captured but not watched" if name in captured else f"{name} is not captured"
        for name in others
    ]
    return text + (f" ({'; '.join(asides)})" if asides else "")


def _leaf(leaf: Leaf, last: Mapping[Leaf, str], attempts: int, captured: Collection[str]) -> str:
    if isinstance(leaf, Banner):
        return _banner(leaf, captured)
    if isinstance(leaf, SdNotify):
        return "READY=1 not received on $NOTIFY_SOCKET"
    result = last.get(leaf, NOT_TRIED)
    # "pid file /x/y.pid does not exist" reads as one sentence; other results follow a colon.
    joiner = " " if result.startswith(("does not", "is not")) else ": "
    return f"{label(leaf)}{joiner}{result} ({attempts_phrase(attempts)})"


def explain(
    probe: Probe,
    ready: Callable[[Leaf], bool],
    last: Mapping[Leaf, str],
    attempts: int,
    captured: Collection[str] = ("stdout",),
) -> str:
    """What keeps ``probe`` from holding: each unsatisfied leaf with its last result.

    ``ready(leaf)`` says whether a leaf held at its last attempt, ``last`` what that attempt
    found (``connection refused``, ``last answer 500``), ``attempts`` how many checks the
    wait made, ``captured`` which output streams the executor captures. For ``all_of`` only
    the first member that does not hold is named: the members after it wait on it.
    """
    if isinstance(probe, AllOf):
        for inner in probe.probes:
            if not _holds(inner, ready):
                return explain(inner, ready, last, attempts, captured)
        return explain(probe.probes[-1], ready, last, attempts, captured)
    if isinstance(probe, AnyOf):
        return " and ".join(
            explain(inner, ready, last, attempts, captured) for inner in probe.probes
        )
    return _leaf(probe, last, attempts, captured)


def _holds(probe: Probe, ready: Callable[[Leaf], bool]) -> bool:
    if isinstance(probe, AllOf):
        return all(_holds(inner, ready) for inner in probe.probes)
    if isinstance(probe, AnyOf):
        return any(_holds(inner, ready) for inner in probe.probes)
    return ready(probe)
