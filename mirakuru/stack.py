"""Stacks: the services of a ``mirakuru.toml``, started together and stopped together.

::

    from mirakuru import Stack

    stack = Stack.load()  # the nearest mirakuru.toml, or [tool.mirakuru] in pyproject.toml
    with stack.up("api") as running:  # api and what it depends on, ready
        port = running["api"].port

Independent services start in parallel, each once its dependencies' conditions hold;
leaving the block stops them, dependents first. The declaration is validated before
anything is spawned (:class:`~mirakuru.core.stack.StackError` names the file and key).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from mirakuru._stack_engine import OutputSink, StackFailed, StackRun, StatusSink, port_variable
from mirakuru.adapter.stackfile import find_stack_file, load_stack
from mirakuru.core.stack import ServiceSpec, StackSpec

__all__ = ["Stack", "StackFailed", "StackRun", "find_stack_file", "port_variable"]


class Stack:
    """A validated stack declaration, ready to be started (as a whole or in part)."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Stack:
        """Read and validate ``path``, or the nearest stack file (as ``mirakuru up`` does).

        Without ``path``, the search starts in the working directory and climbs: in each
        directory ``mirakuru.toml``, then ``pyproject.toml`` with ``[tool.mirakuru]``.
        """
        return cls(load_stack(path))

    @property
    def path(self) -> str:
        """The file the stack was read from."""
        return self.spec.source

    @property
    def names(self) -> tuple[str, ...]:
        """Every service's name, in file order."""
        return self.spec.names

    def service(self, name: str) -> ServiceSpec:
        """The declaration of service ``name``."""
        return self.spec.service(name)

    def fingerprint(self, name: str) -> str:
        """A digest of how ``name`` is defined (see :meth:`StackSpec.fingerprint`), with
        this package's version: equal digests mean the same service would be started."""
        from mirakuru import __version__

        return self.spec.fingerprint(name, __version__)

    def start(
        self,
        *names: str,
        reservations: str | os.PathLike[str] | None = None,
        on_output: OutputSink | None = None,
        on_change: StatusSink | None = None,
    ) -> StackRun:
        """Start ``names`` (default: every service) and their dependencies; return once all
        are up. The caller stops the returned run (``run.stop()``); :meth:`up` does it.

        ``reservations`` is a directory in which chosen ports are claimed (so processes
        sharing it never pick the same one); ``on_output(name, stream, line)`` receives
        every line the services print, ``on_change(name, status, detail)`` every status.
        Raises :class:`StackFailed` (with nothing left running) when a service fails.
        """
        run = StackRun(
            self.spec,
            names,
            reservations=os.fspath(reservations) if reservations is not None else None,
            on_output=on_output,
            on_change=on_change,
        )
        return run.start()

    @contextmanager
    def up(
        self,
        *names: str,
        reservations: str | os.PathLike[str] | None = None,
        on_output: OutputSink | None = None,
        on_change: StatusSink | None = None,
    ) -> Iterator[StackRun]:
        """Start ``names`` and their dependencies for the block; stop them all after it.

        The block gets a mapping of service name to its started executor, each with a
        ``port`` attribute (None when the service has no ``{port}``).
        """
        run = self.start(
            *names, reservations=reservations, on_output=on_output, on_change=on_change
        )
        try:
            yield run
        finally:
            run.stop()

    def __repr__(self) -> str:
        return f"<Stack {self.path}: {', '.join(self.names)}>"
