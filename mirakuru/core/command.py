"""Command normalisation and the child's environment."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

import attrs

__all__ = ["Command", "compose_environment", "normalize_command"]

#: The environment variable that marks every process an executor starts.
ENV_MARKER = "mirakuru_uuid"


@attrs.frozen(slots=True)
class Command:
    """A command as the user gave it: a display string and the argv it stands for."""

    display: str
    argv: tuple[str, ...]
    parts: str | list[str] | tuple[str, ...]

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
        parts = command if isinstance(command, list | tuple) else list(command)
        for index, part in enumerate(parts):
            if not isinstance(part, str):
                raise TypeError(
                    f"command part {index} must be a str, got {part!r} ({type(part).__name__})"
                )
        return Command(shlex.join(parts), tuple(parts), parts)
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
