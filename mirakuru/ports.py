"""Free TCP ports for services, unique across the processes of one test run.

:func:`free_port` asks the OS for a port nothing listens on. Given a directory that
cooperating processes share (pytest-xdist workers: :func:`run_reservations`), it also claims
the port there, so two workers never hand out the same one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from mirakuru.adapter.paths import is_private
from mirakuru.adapter.ports import PORT_PLACEHOLDER, NoFreePort, fill_port, free_port

__all__ = ["PORT_PLACEHOLDER", "NoFreePort", "fill_port", "free_port", "run_reservations"]


class _BaseTemp(Protocol):
    def getbasetemp(self) -> Path: ...


def run_reservations(tmp_path_factory: _BaseTemp) -> Path:
    """The port-claims directory shared by every worker of this pytest run.

    Pass pytest's ``tmp_path_factory``; under pytest-xdist the workers' base temporary
    directories are siblings, so their common parent is the run's shared root. That parent
    is used only if it is private to us (pytest makes it so): with ``PYTEST_XDIST_WORKER``
    merely inherited and a ``--basetemp`` directly in ``/tmp``, the parent would be ``/tmp``
    itself, and the reservations go under the basetemp instead.
    """
    return shared_root(tmp_path_factory.getbasetemp()) / "mirakuru-ports"


def shared_root(basetemp: Path) -> Path:
    """The directory every worker of this pytest run shares (see :func:`run_reservations`)."""
    parent = basetemp.parent
    if os.environ.get("PYTEST_XDIST_WORKER") and is_private(parent):
        return parent
    return basetemp
