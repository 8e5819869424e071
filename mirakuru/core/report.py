"""What one stop did, as a value: the public type of ``Executor.last_stop``."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["StopReport"]


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

    def note(self, name: Callable[[int], str] = str) -> str:
        """One line for the state history; ``name`` spells a signal number (the adapter's
        ``signal_name`` gives ``SIGTERM``, the pure default the bare number)."""
        sent = name(self.signal)
        if self.escalated:
            forceful = "the kill signal" if self.kill_signal is None else name(self.kill_signal)
            line = (
                f"escalated to {forceful}"
                f" after {self.grace} s: {len(self.ignored)} process(es) ignored {sent}"
            )
        else:
            line = f"{sent} sent to {self.signalled} process(es), exit code {self.exit_code}"
        if self.leftovers:
            line += f"; {len(self.leftovers)} still alive: {sorted(self.leftovers)}"
        return line
