"""The child processes of the command line: signals that interrupt us, and commands we run.

``run --then CMD`` and ``wait -- COMMAND`` run a command in our process group and exit with
its status, as a shell reports it; SIGINT and SIGTERM end it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mirakuru.cli.args import CANNOT_EXECUTE, NOT_FOUND, SIGNALLED

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Interrupted", "SignalGuard", "exit_status", "how_it_ended", "run_then", "unrunnable"]


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; carries the signal number for the exit status."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalGuard:
    """Turns the first SIGINT or SIGTERM into :class:`Interrupted`; later ones are only noted.

    Once shielded (by the first signal, or before clean-up), signals no longer interrupt,
    so stopping the process tree, which is bounded, always runs to the end.
    """

    def __init__(self) -> None:
        self.shielded = False
        self.received: list[int] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if not self.shielded:
            self.shielded = True
            raise Interrupted(signum)

    def shield(self) -> None:
        """From now on, signals are noted but interrupt nothing."""
        self.shielded = True

    @contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        """Handle SIGINT and SIGTERM this way for the duration of the block."""
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._handle) for sig in sigs}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it (128+N when ended by signal N)."""
    return SIGNALLED - returncode if returncode < 0 else returncode


def how_it_ended(returncode: int) -> str:
    """``status 1`` or ``signal SIGKILL (status 137)``, for messages."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal {name} (status {exit_status(returncode)})"


def run_then(command: str | list[str], grace: float, *, stdout_to_stderr: bool) -> int:
    """Run ``command`` (a string: with the shell) in our process group; end it if interrupted."""
    stdout = sys.stderr.fileno() if stdout_to_stderr else None
    shell = isinstance(command, str)
    child = subprocess.Popen(command, shell=shell, stdout=stdout)
    try:
        return exit_status(child.wait())
    except Interrupted:
        # The guard is shielded now: this clean-up cannot be interrupted in turn.
        child.terminate()
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def unrunnable(program: str) -> int | None:
    """None if ``program`` can be run; else the shell's status for it (127 or 126)."""
    if shutil.which(program) is not None:
        return None
    return CANNOT_EXECUTE if os.sep in program and os.path.exists(program) else NOT_FOUND
