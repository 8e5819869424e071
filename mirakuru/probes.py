"""Readiness probes: what "ready" means, as values you can combine.

Pass one to ``Executor(command, ready=...)``::

    from mirakuru import Executor, probes

    service = Executor(
        ["my-server", "--port", "8080"],
        ready=probes.all_of(
            probes.tcp("127.0.0.1", 8080),
            probes.http("http://127.0.0.1:8080/health", status=200),
        ),
    )

Probes are frozen, hashable values that validate their input when made; combinators
flatten (``all_of(a, all_of(b, c))`` is ``all_of(a, b, c)``) and check in order, so put
the cheap probe first. :func:`wait_for_probe` waits for probes of a service that
something else started.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.readiness.evaluate import attempt, within
from mirakuru.adapter.readiness.findings import Findings
from mirakuru.adapter.run.waiter import wait_until
from mirakuru.core.budget import Budget
from mirakuru.core.outcome import Ready
from mirakuru.core.probes import (
    AllOf,
    AnyOf,
    Banner,
    Http,
    Leaf,
    PidFile,
    Probe,
    SdNotify,
    Tcp,
    UnixSocket,
    all_of,
    any_of,
    banner,
    http,
    is_external,
    leaves,
    pid_file,
    satisfied,
    sd_notify,
    tcp,
    unix_socket,
)
from mirakuru.core.schedule import MAX_AUTO_CAP, PollSchedule
from mirakuru.core.unmet import explain

__all__ = [
    "AllOf",
    "AnyOf",
    "Banner",
    "Http",
    "Leaf",
    "PidFile",
    "Probe",
    "ProbeWait",
    "SdNotify",
    "Tcp",
    "UnixSocket",
    "all_of",
    "any_of",
    "banner",
    "http",
    "leaves",
    "pid_file",
    "satisfied",
    "sd_notify",
    "tcp",
    "unix_socket",
    "wait_for_probe",
]


@attrs.frozen(slots=True)
class ProbeWait:
    """How a :func:`wait_for_probe` ended: ready or not, after how many attempts and seconds,
    and when not ready, what was missing (``tcp 127.0.0.1:6399: connection refused (412
    attempts)``)."""

    ready: bool
    attempts: int
    elapsed: float
    unmet: str | None = None


def wait_for_probe(
    probe: Probe,
    timeout: float | None,
    *,
    sleep: float | None = None,
    on_attempt: Callable[[int], object] | None = None,
) -> ProbeWait:
    """Try ``probe`` until it holds or ``timeout`` seconds pass (like wait-for-it).

    Only probes that need no process of ours can be waited for this way: a banner or
    sd_notify needs an executor. ``sleep`` is the longest pause between attempts
    (default: adaptive, about 1 ms at first). ``on_attempt(n)`` is told of each attempt
    as it starts, for progress displays. Once an HTTP server answers (any status), it is
    asked no more often than every ``sleep`` (0.1 s by default).
    """
    internal = [leaf for leaf in leaves(probe) if not is_external(leaf)]
    if internal:
        raise ValueError(
            f"cannot wait for {internal[0]!r} without starting the process: use an Executor"
        )
    began = monotonic()
    budget = Budget.starting_at(began, timeout)

    attempts = 0
    findings = Findings()

    def check() -> bool:
        nonlocal attempts
        attempts += 1
        if on_attempt is not None:
            on_attempt(attempts)
        return attempt(probe, within(budget), findings=findings)

    def floor() -> float:
        # An application that answers is up: polling it faster only floods its log.
        return (sleep or MAX_AUTO_CAP) if findings.answered else 0.0

    schedule = PollSchedule(cap=sleep) if sleep is not None else PollSchedule()
    outcome = wait_until(check, budget, schedule, adaptive=sleep is None, floor=floor)
    if isinstance(outcome, Ready):
        return ProbeWait(True, attempts, monotonic() - began)
    unmet = explain(probe, lambda leaf: findings.ready.get(leaf, False), findings.last, attempts)
    return ProbeWait(False, attempts, monotonic() - began, unmet)
