"""Hypothesis strategies for mirakuru's values: probes, budgets, poll schedules, timeouts.

For property-testing your own timeouts (see :func:`mirakuru.testing.simulate_start`) and
code built on the core values. This module needs `hypothesis
<https://hypothesis.readthedocs.io>`_, which ``pip install 'mirakuru[testing]'`` brings;
the rest of mirakuru never imports it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal, TypeAlias

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "mirakuru.testing.strategies needs hypothesis: pip install 'mirakuru[testing]'"
        f" (importing it failed: {error})"
    ) from error

from mirakuru.core.budget import Budget
from mirakuru.core.probes import (
    Leaf,
    Probe,
    all_of,
    any_of,
    banner,
    http,
    pid_file,
    sd_notify,
    tcp,
    unix_socket,
)
from mirakuru.core.schedule import PollSchedule

__all__ = [
    "EVENT_DRIVEN_KINDS",
    "KINDS",
    "POLLED_KINDS",
    "Kind",
    "budgets",
    "durations",
    "leaves",
    "poll_schedules",
    "probes",
    "sleeps",
    "timeouts",
]

Kind: TypeAlias = Literal["banner", "tcp", "http", "pid_file", "unix_socket", "sd_notify"]
#: Every kind of probe leaf.
KINDS: tuple[Kind, ...] = ("banner", "tcp", "http", "pid_file", "unix_socket", "sd_notify")
#: Kinds whose readiness wakes a waiting start at once: output, notifications, and files
#: or sockets appearing in a watched directory (where the platform can watch one).
EVENT_DRIVEN_KINDS: tuple[Kind, ...] = ("banner", "pid_file", "unix_socket", "sd_notify")
#: Kinds nothing announces: a port beginning to listen is only seen by polling it.
POLLED_KINDS: tuple[Kind, ...] = ("tcp", "http")


def durations(*, min_value: float = 0.0, max_value: float = 60.0) -> st.SearchStrategy[float]:
    """Finite, non-negative numbers of seconds between ``min_value`` and ``max_value``."""
    return st.floats(min_value=min_value, max_value=max_value, allow_nan=False)


def timeouts(
    *, max_value: float = 60.0, allow_none: bool = False
) -> st.SearchStrategy[float | None]:
    """Start-up timeouts: up to ``max_value`` seconds, or (with ``allow_none``) no limit."""
    limited: st.SearchStrategy[float | None] = durations(max_value=max_value)
    return st.none() | limited if allow_none else limited


def sleeps(*, min_value: float = 0.001, max_value: float = 1.0) -> st.SearchStrategy[float]:
    """Values of ``sleep``, the longest pause between checks: positive, finite."""
    if not min_value > 0:
        raise ValueError(f"min_value must be > 0 (a sleep is positive), got {min_value!r}")
    return st.floats(min_value=min_value, max_value=max_value, allow_nan=False)


def poll_schedules(*, max_cap: float = 1.0) -> st.SearchStrategy[PollSchedule]:
    """Poll schedules: a cap up to ``max_cap``, a first delay, a growth factor."""
    return st.builds(
        PollSchedule,
        cap=sleeps(max_value=max_cap),
        first=st.floats(min_value=0.0001, max_value=0.1, allow_nan=False),
        growth=st.floats(min_value=1.0, max_value=4.0, allow_nan=False),
    )


def budgets(
    *, now: float = 0.0, max_timeout: float = 60.0, allow_unbounded: bool = True
) -> st.SearchStrategy[Budget]:
    """Budgets armed at ``now``: up to ``max_timeout`` seconds, or (with
    ``allow_unbounded``) without a deadline."""
    return st.builds(
        Budget.starting_at,
        st.just(now),
        timeouts(max_value=max_timeout, allow_none=allow_unbounded),
    )


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_PORTS = st.integers(min_value=1, max_value=65535)


def _leaf(kind: Kind) -> st.SearchStrategy[Leaf]:
    strategy: st.SearchStrategy[Leaf]
    if kind == "banner":
        strategy = _NAMES.map(lambda word: banner(f"^{word}$"))
    elif kind == "tcp":
        strategy = st.builds(tcp, st.sampled_from(["127.0.0.1", "::1", "localhost"]), _PORTS)
    elif kind == "http":
        strategy = st.builds(
            lambda port, path: http(f"http://127.0.0.1:{port}/{path}"), _PORTS, _NAMES
        )
    elif kind == "pid_file":
        strategy = _NAMES.map(lambda name: pid_file(f"/tmp/{name}.pid"))  # noqa: S108 - a value
    elif kind == "unix_socket":
        strategy = _NAMES.map(lambda name: unix_socket(f"/tmp/{name}.sock"))  # noqa: S108
    elif kind == "sd_notify":
        strategy = st.just(sd_notify())
    else:
        raise ValueError(f"unknown probe kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return strategy


def _kinds(kinds: Collection[Kind]) -> list[Kind]:
    chosen = list(dict.fromkeys(kinds))
    if not chosen:
        raise ValueError("kinds must name at least one probe kind")
    for kind in chosen:
        if kind not in KINDS:
            raise ValueError(f"unknown probe kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return chosen


def leaves(kinds: Collection[Kind] = KINDS) -> st.SearchStrategy[Leaf]:
    """Single probes of the given ``kinds`` (banners watch stdout)."""
    return st.one_of([_leaf(kind) for kind in _kinds(kinds)])


def probes(kinds: Collection[Kind] = KINDS, *, max_leaves: int = 4) -> st.SearchStrategy[Probe]:
    """Probes of the given ``kinds``: single leaves, or ``all_of``/``any_of``
    combinations of up to ``max_leaves`` of them, nested."""
    if max_leaves < 1:
        raise ValueError(f"max_leaves must be at least 1, got {max_leaves!r}")
    base: st.SearchStrategy[Probe] = leaves(kinds)
    if max_leaves == 1:
        return base
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda parts: all_of(*parts)),
            st.lists(inner, min_size=1, max_size=3).map(lambda parts: any_of(*parts)),
        ),
        max_leaves=max_leaves,
    )
