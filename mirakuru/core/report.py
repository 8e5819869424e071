"""What one stop did, as a value: the public type of ``Executor.last_stop``."""

from __future__ import annotations

import signal

import attrs

__all__ = ["StopReport", "signal_name"]


def signal_name(sig: int) -> str:
    """``SIGTERM`` for 15; the bare number for anything that is not a known signal."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


@attrs.frozen(slots=True)
class StopReport:
    """What one ``stop()`` or ``kill()`` did: who was signalled, who resisted, how long."""

    signal: int
    signalled: int
    escalated: bool = False
    ignored: tuple[int, ...] = ()
    leftovers: tuple[int, ...] = ()
    exit_code: int | None = None
    duration: float = 0.0
    grace: float | None = None
    kill_signal: int | None = None

    def note(self) -> str:
        """One line for the state history."""
        sent = signal_name(self.signal)
        if self.escalated:
            # SIGKILL is absent on some platforms; start() refuses those, but a value must
            # still describe itself.
            forceful: int = self.kill_signal or int(getattr(signal, "SIGKILL", signal.SIGTERM))
            line = (
                f"escalated to {signal_name(forceful)}"
                f" after {self.grace} s: {len(self.ignored)} process(es) ignored {sent}"
            )
        else:
            line = f"{sent} sent to {self.signalled} process(es), exit code {self.exit_code}"
        if self.leftovers:
            line += f"; {len(self.leftovers)} still alive: {sorted(self.leftovers)}"
        return line
