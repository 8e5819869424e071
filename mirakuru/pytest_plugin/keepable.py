"""``service_fixture(..., reuse=True)``: a declared service written as a one-service stack.

A kept service is started by a supervisor that outlives the run, so it must be described
by values alone (a command, an environment, a working directory, a probe), never by code
of the conftest: that is what a stack declaration is, and what its digest compares.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirakuru.core.stack import StackSpec

__all__ = ["KEEPABLE_OPTIONS", "check_keepable", "declaration"]

#: The executor arguments a kept service may have (besides timeout, stop_timeout, envvars).
KEEPABLE_OPTIONS = frozenset({"cwd"})
#: The port a ``ready`` function is called with, to learn where it puts the port.
_STAND_IN = 1
#: A service without a timeout of its own still gets one in the supervisor.
_NO_LIMIT = 24 * 3600.0
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def check_keepable(command: object, scope: str, executor_kwargs: Mapping[str, Any]) -> None:
    """Refuse, where it is declared, what cannot be kept between runs."""
    if scope != "session":
        raise ValueError(f"service_fixture: reuse=True needs scope='session', got {scope!r}")
    if callable(command):
        raise TypeError(
            "service_fixture: reuse=True needs the command itself (a string or a sequence of"
            " arguments), not a function: a kept service is compared by what it runs"
        )
    extra = sorted(set(executor_kwargs) - KEEPABLE_OPTIONS)
    if extra:
        raise TypeError(
            f"service_fixture: reuse=True cannot keep a service with {', '.join(extra)}"
            " (a kept service has a command, envvars, cwd, timeout, stop_timeout and ready)"
        )


def declaration(
    command: str | list[str] | tuple[str, ...],
    ready: Any,
    options: Mapping[str, Any],
    fixture: str,
    declared_in: str | None,
) -> StackSpec:
    """The one-service stack that starts what the declaration describes.

    Its source, which keys the supervisor's state directory, is the declaring file and the
    fixture's name: two conftests may each declare a kept service of one name.
    """
    from mirakuru.core import probes
    from mirakuru.core.stack import ready_table
    from mirakuru.core.stack.parse import parse_stack

    name = _NAME.sub("-", fixture.lstrip("_-")) or "service"
    table: dict[str, Any] = {"command": command if isinstance(command, str) else list(command)}
    probe = ready(_STAND_IN) if callable(ready) else ready
    if probe is not None:
        if not isinstance(probe, probes.PROBE_TYPES):
            raise TypeError(f"service_fixture: ready gave {probe!r}, not a probe")
        try:
            table["ready"] = ready_table(probe, _STAND_IN)
        except TypeError as error:
            raise TypeError(f"service_fixture: reuse=True: {error}") from None
    envvars = dict(options.get("envvars") or {})
    if envvars:
        table["env"] = envvars
    cwd = options.get("cwd")
    table["cwd"] = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
    timeout = options.get("timeout")
    table["timeout"] = float(timeout) if timeout is not None else _NO_LIMIT
    if options.get("stop_timeout") is not None:
        table["stop_timeout"] = float(options["stop_timeout"])
    where = os.path.abspath(declared_in) if declared_in else os.path.abspath("conftest.py")
    return parse_stack({"services": {name: table}}, f"{where}::{name}")
