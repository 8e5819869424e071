"""The cheap, sure answer to most wake-ups of a wait: "not ready yet", without blocking.

Most wake-ups of a wait come from its schedule, not from an event, and can be answered in
microseconds: no listener in the kernel's socket table, no pid file yet, no banner seen.
Both drivers ask this first and run the full check (a connect, a request, a subclass's
own code; for an async start, in a worker thread) only when the answer is not a sure
"no". Anything that could end the wait otherwise (an exit, an end of output, a stop) is
never answered here: the full check decides it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mirakuru.adapter.readiness.evaluate import EventState, refusal
from mirakuru.adapter.run.run import Run
from mirakuru.core.probes import (
    AllOf,
    AnyOf,
    Banner,
    PidFile,
    Probe,
    SdNotify,
    UnixSocket,
    leaves,
)

__all__ = ["surely_unready"]

#: Returns True when the probe surely fails right now.
Gate = Callable[[], bool]


def surely_unready(probe: Probe, run: Run, seen: EventState) -> Gate | None:
    """A non-blocking "not ready yet" for ``probe`` on ``run``, or None if it has none.

    Made off the loop (resolving a TCP probe's host may block); called on it. ``seen``
    answers for banners and sd_notify.
    """
    if not run.real:
        return None  # a stand-in's state is known only through its own (mock) methods
    gate = _gate(probe, seen)
    if gate is None:
        return None
    # An end of the output a banner waits for makes the probe hopeless: the full check
    # says so (OutputEnded). Other streams may close early without mattering.
    watched = {name for leaf in leaves(probe) if isinstance(leaf, Banner) for name in leaf.streams}
    streams = tuple(pump for name, pump in run.pump.streams.items() if name in watched)

    def unready() -> bool:
        if run.stopping or run.exit_seen is not None:
            return False
        for stream in streams:
            if stream.eof:
                return False
        # With a pidfd the reactor records an exit the moment it happens (and wakes the
        # waiter: the full check follows); without one, ask the kernel.
        if run.pidfd is None and run.exit_code() is not None:
            return False
        return gate()

    return unready


def _gate(probe: Probe, seen: EventState) -> Gate | None:
    if isinstance(probe, AllOf | AnyOf):
        gates = [_gate(inner, seen) for inner in probe.probes]
        known = [gate for gate in gates if gate is not None]
        if isinstance(probe, AllOf):
            # One member surely failing fails them all.
            return (lambda: any(gate() for gate in known)) if known else None
        if len(known) != len(gates):
            return None  # a member without a gate may pass on its own
        return lambda: all(gate() for gate in known)
    if isinstance(probe, Banner | SdNotify):
        leaf = probe
        return lambda: not seen(leaf)
    if isinstance(probe, PidFile | UnixSocket):
        path = probe.path
        return lambda: not os.path.exists(path)
    return refusal(probe)
