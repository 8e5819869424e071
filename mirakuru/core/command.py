"""Command normalisation and the child's environment."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import attrs

__all__ = ["Command", "CommandLike", "compose_environment", "normalize_command"]

#: What executors accept as a command: a shell-like string, or arguments (str or paths).
CommandLike: TypeAlias = str | Sequence[str | os.PathLike[str]]

#: The environment variable that marks every process an executor starts.
ENV_MARKER = "mirakuru_uuid"


@attrs.frozen(slots=True)
class Command:
    """A command as the user gave it: a display string and the argv it stands for."""

    display: str
    argv: tuple[str, ...]
    parts: str | list[str] | tuple[str, ...] | Sequence[str | os.PathLike[str]]

    @property
    def empty(self) -> bool:
        """Whether there is nothing to run."""
        return not self.argv


def normalize_command(command: object) -> Command:
    """Turn a string or a sequence of strings into a :class:`Command`.

    A string is split like a POSIX shell would; a sequence is kept as given (its display
    form is the shell-quoted join). An empty command is accepted here and refused at start.
    """
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as error:
            raise ValueError(f"command {command!r} cannot be parsed: {error}") from None
        return Command(command, argv, list(argv))
    if isinstance(command, Sequence) and not isinstance(command, bytes | bytearray):
        texts: list[str] = []
        for index, part in enumerate(command):
            text = os.fspath(part) if isinstance(part, os.PathLike) else part
            if not isinstance(text, str):
                raise TypeError(
                    f"command part {index} must be a str or path, got {part!r}"
                    f" ({type(part).__name__})"
                )
            texts.append(text)
        # As published, a list or tuple of str is kept as given in ``command_parts``.
        kept = command if isinstance(command, list | tuple) and texts == list(command) else texts
        return Command(shlex.join(texts), tuple(texts), kept)
    raise TypeError(
        f"command must be a str or a sequence of str, got {command!r} ({type(command).__name__})"
    )


def compose_environment(
    base: Mapping[str, str], extra: Mapping[str, str], marker: str
) -> dict[str, str]:
    """The child's full environment: ``base`` overlaid with ``extra`` and the marker."""
    environment = dict(base)
    environment.update(extra)
    environment[ENV_MARKER] = marker
    return environment
