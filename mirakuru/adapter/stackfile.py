"""Finding and reading a stack file: ``mirakuru.toml``, or ``[tool.mirakuru]`` in pyproject.

The search starts in the working directory and climbs to the root; in each directory a
``mirakuru.toml`` comes before a ``pyproject.toml`` that has a ``[tool.mirakuru]`` table,
so the nearest declaration wins.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from mirakuru.core.stack import InvalidValue, StackFileNotFound, StackSpec, parse_stack

__all__ = ["FILE_NAME", "PYPROJECT", "find_stack_file", "load_stack"]

FILE_NAME = "mirakuru.toml"
PYPROJECT = "pyproject.toml"
_TABLE = "tool.mirakuru"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise StackFileNotFound(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise StackFileNotFound(str(path), "", "is a directory, not a stack file") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidValue(str(path), "", f"not valid TOML: {error}") from None


def _tool_table(data: dict[str, Any]) -> Any:
    tool = data.get("tool")
    return tool.get("mirakuru") if isinstance(tool, dict) else None


def find_stack_file(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest stack file at or above ``start`` (default: the working directory)."""
    here = Path(start if start is not None else Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and _tool_table(_read(pyproject)) is not None:
            return pyproject
    raise StackFileNotFound(
        str(here),
        "",
        f"no {FILE_NAME} (nor [{_TABLE}] in {PYPROJECT}) here or in any parent directory",
    )


def load_stack(path: str | os.PathLike[str] | None = None) -> StackSpec:
    """Read and validate the stack file ``path`` (default: the nearest one)."""
    if path is None:
        chosen = find_stack_file()
    else:
        chosen = Path(path).absolute()
        if chosen.is_dir():
            chosen = find_stack_file(chosen)
    data = _read(chosen)
    source = os.path.normpath(chosen)
    if chosen.name == PYPROJECT:
        table = _tool_table(data)
        if table is None:
            raise StackFileNotFound(source, "", f"has no [{_TABLE}] table")
        return parse_stack(table, source, prefix=_TABLE)
    return parse_stack(data, source)
