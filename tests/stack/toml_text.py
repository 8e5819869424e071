"""A tiny TOML writer for tests: turns a declaration dict back into file text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_value(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(_value(item) for item in value) + "]"


def dumps(declaration: Mapping[str, Any], prefix: str = "") -> str:
    """``{"services": {name: table}}`` as TOML, one ``[services.NAME]`` table each."""
    lines = []
    for name, table in declaration["services"].items():
        lines.append(f"[{prefix}services.{_value(name)}]")
        lines.extend(f"{_value(key)} = {_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)
