"""Keeping services between test runs: whether to, for how long, and what to do with a kept one.

A kept service is attached to only when it is provably the one a run would start and is
healthy now; everything else about it is decided here, from facts the adapter gathered
(its definition's digest, whether its identity still holds, whether its probe passed just
now), so the decisions are pure and can be checked exhaustively.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

__all__ = [
    "CI_VARIABLE",
    "DEFAULT_IDLE",
    "IDLE_VARIABLE",
    "REUSE_VARIABLE",
    "Kept",
    "Plan",
    "Setting",
    "Verdict",
    "expired",
    "idle_limit",
    "judge",
    "next_expiry",
    "parse_duration",
    "plan",
    "setting",
]

#: ``MIRAKURU_REUSE=1`` turns reuse on (as ``--mirakuru-reuse`` does).
REUSE_VARIABLE = "MIRAKURU_REUSE"
#: How long a kept service nobody uses lives on: ``2h``, ``30m``, ``90s``, ``1h30m``.
IDLE_VARIABLE = "MIRAKURU_REUSE_IDLE"
#: Set (to anything but the empty string) on CI services: reuse is then always off.
CI_VARIABLE = "CI"
#: The idle limit when none is given: an afternoon's pause, not a week's.
DEFAULT_IDLE = 3 * 3600.0

_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")


@attrs.frozen(slots=True)
class Setting:
    """Whether this run keeps services: asked for, and allowed."""

    requested: bool
    on: bool
    #: Why it is off although it was asked for ("" otherwise).
    why_off: str = ""


def setting(environ: Mapping[str, str], option: bool) -> Setting:
    """Reuse is on when asked for (``option``, or ``MIRAKURU_REUSE`` true) and ``CI`` is unset.

    Any non-empty ``CI`` counts, ``CI=false`` included: a CI job must start from nothing,
    and a wrongly kept service there is worse than a slow start on a laptop. An unknown
    ``MIRAKURU_REUSE`` value is an error rather than a guess.
    """
    raw = environ.get(REUSE_VARIABLE, "").strip().lower()
    if raw not in _YES | _NO:
        raise ValueError(
            f"{REUSE_VARIABLE} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}"
        )
    requested = option or raw in _YES
    ci = environ.get(CI_VARIABLE, "")
    if requested and ci:
        return Setting(True, False, f"{CI_VARIABLE} is set ({CI_VARIABLE}={ci})")
    return Setting(requested, requested)


def parse_duration(text: str, name: str = IDLE_VARIABLE) -> float:
    """Seconds in ``text``: a plain number of seconds, or parts such as ``2h``, ``1h30m``,
    ``45s``, ``1.5h``. It must be positive and finite; ``name`` is named in the error."""
    cleaned = text.strip().lower().replace(" ", "")
    problem = f"{name} expects a duration such as 2h, 30m, 90s or 1h30m (or seconds), got {text!r}"
    try:
        seconds = float(cleaned)
    except ValueError:
        position = 0
        seconds = 0.0
        for match in _PART.finditer(cleaned):
            if match.start() != position:
                raise ValueError(problem) from None
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            position = match.end()
        if position == 0 or position != len(cleaned):
            raise ValueError(problem) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(problem)
    return seconds


def idle_limit(environ: Mapping[str, str]) -> float:
    """The idle limit ``MIRAKURU_REUSE_IDLE`` gives, or :data:`DEFAULT_IDLE`."""
    raw = environ.get(IDLE_VARIABLE, "").strip()
    return parse_duration(raw) if raw else DEFAULT_IDLE


class Verdict(enum.Enum):
    """What becomes of a service a run wants, given what is kept under its name."""

    ATTACH = "attach"  # the same definition, the same process, and its probe passed now
    MISSING = "missing"  # nothing kept: start it
    CHANGED = "changed"  # kept, but defined differently now: stop it, start afresh
    DEAD = "dead"  # its process is gone or is no longer the one started
    UNHEALTHY = "unhealthy"  # alive, but its probe failed just now


@attrs.frozen(slots=True)
class Kept:
    """What was found about one kept service, just now."""

    fingerprint: str
    #: Same PID and start time, still in its own cgroup (where it has one), and ours.
    alive: bool
    #: The readiness probe asked again: passed, failed, or None when there is none to ask
    #: (a job that completed, a service ready when spawned).
    probe_passed: bool | None


def judge(kept: Kept | None, wanted: str) -> Verdict:
    """The verdict for a service whose definition now has the digest ``wanted``.

    The definition is compared first: a changed one is never attached to, however healthy.
    """
    if kept is None:
        return Verdict.MISSING
    if kept.fingerprint != wanted:
        return Verdict.CHANGED
    if not kept.alive:
        return Verdict.DEAD
    if kept.probe_passed is False:
        return Verdict.UNHEALTHY
    return Verdict.ATTACH


@attrs.frozen(slots=True)
class Plan:
    """What to do for one request: stop (dependents first), then start (dependencies first)."""

    stop: tuple[str, ...]
    start: tuple[str, ...]
    attach: tuple[str, ...]


def _depends(
    name: str, on: Collection[str], requires: Mapping[str, Sequence[str]], seen: set[str]
) -> bool:
    if name in seen:
        return False
    seen.add(name)
    return any(need in on or _depends(need, on, requires, seen) for need in requires.get(name, ()))


def plan(
    wanted: Sequence[str],
    verdicts: Mapping[str, Verdict],
    running: Mapping[str, Sequence[str]],
) -> Plan:
    """Decide, for the services ``wanted`` (dependencies first), what to stop and start.

    ``running`` maps each kept service to what it depends on (as it was started);
    ``verdicts`` has one entry per wanted service. Anything kept whose verdict is not
    ATTACH is stopped, and so is every kept service that depends on it, directly or not,
    wanted or not: a service is never left running on top of one that is started again.
    """
    bad = {name for name in wanted if name in running and verdicts[name] is not Verdict.ATTACH}
    doomed = {name for name in running if name in bad or _depends(name, bad, running, set())}
    stop = _dependents_first(doomed, running)
    start = tuple(name for name in wanted if name not in running or name in doomed)
    attach = tuple(name for name in wanted if name in running and name not in doomed)
    return Plan(stop, start, attach)


def _dependents_first(
    names: Iterable[str], requires: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    chosen = set(names)
    placed: list[str] = []
    done: set[str] = set()

    def place(name: str) -> None:
        # Dependencies are placed first, then the list is reversed.
        if name in done:
            return
        done.add(name)
        for need in requires.get(name, ()):
            if need in chosen:
                place(need)
        placed.append(name)

    for name in sorted(chosen):
        place(name)
    return tuple(reversed(placed))


def expired(last_use: Mapping[str, float | None], idle: float, now: float) -> tuple[str, ...]:
    """The services nobody has used for ``idle`` seconds at ``now`` (None: in use now)."""
    return tuple(
        sorted(name for name, when in last_use.items() if when is not None and when + idle <= now)
    )


def next_expiry(last_use: Mapping[str, float | None], idle: float) -> float | None:
    """When the next service runs out of its idle time (None: none will while in use)."""
    times = [when + idle for when in last_use.values() if when is not None]
    return min(times) if times else None
