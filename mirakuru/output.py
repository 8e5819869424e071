"""Wait for a line of output: the drop-in ``OutputExecutor``."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from mirakuru.base import Executor
from mirakuru.core.command import CommandLike
from mirakuru.core.probes import Stream
from mirakuru.core.probes import banner as banner_probe

__all__ = ["OutputExecutor"]


class OutputExecutor(Executor):
    """Ready once a line the process prints matches ``banner`` (a regular expression).

    Every captured stream is watched (stdout by default; stderr too with
    ``stderr=subprocess.PIPE``). Waiting is woken by the output itself, and if the output
    ends without the banner, ``start()`` fails at once with an :class:`OutputEnded` error,
    which is also a :class:`TimeoutExpired`. After ``start()``, ``output()`` (or
    ``err_output()``) continues with the text printed after the banner line.
    """

    def __init__(
        self,
        command: CommandLike,
        banner: str | re.Pattern[str],
        **kwargs: Any,
    ) -> None:
        """Describe the process and the banner; other arguments as for :class:`Executor`."""
        watched: tuple[tuple[Stream, object], ...] = (
            ("stdout", kwargs.get("stdout", subprocess.PIPE)),
            ("stderr", kwargs.get("stderr")),
        )
        captured = [name for name, value in watched if value == subprocess.PIPE]
        if not captured:
            raise TypeError(
                "OutputExecutor needs stdout or stderr captured (subprocess.PIPE) "
                "to watch for its banner"
            )
        probe = banner_probe(banner, captured)
        #: The compiled banner, as the published class exposed it.
        self.banner = probe.pattern
        super().__init__(command, ready=probe, **kwargs)
