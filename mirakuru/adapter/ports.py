"""Choosing free TCP ports, optionally claimed in a directory shared by cooperating processes.

The OS picks a port that nothing is bound to (bind to port 0), and we release it so the
service can bind it. Between the release and the service's bind another process could take
it; the OS rarely hands the same port out twice in a row, and a reservation file created
exclusively in a shared directory rules out that two cooperating processes (pytest-xdist
workers, parallel CLI runs) ever pick the same one.
"""

from __future__ import annotations

import os
import socket

from mirakuru.adapter.paths import private_directory

__all__ = ["PORT_PLACEHOLDER", "NoFreePort", "fill_port", "free_port"]

#: The text replaced by the chosen port in commands, probes and environment values.
PORT_PLACEHOLDER = "{port}"
#: How many ports to try before concluding the reservations are exhausted.
_ATTEMPTS = 200


class NoFreePort(RuntimeError):
    """No unreserved port could be found."""


def _bound_port() -> int:
    # Binding on every interface makes sure nothing listens on the port on any of them.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
    return port


def free_port(reservations: str | os.PathLike[str] | None = None) -> int:
    """A port nothing listens on, claimed in ``reservations`` (a directory) when given.

    The directory is made with mode 0700 if missing; one that exists must be a real
    directory of ours that no other user may write (else
    :class:`~mirakuru.adapter.paths.UnsafeDirectory`, a :class:`PermissionError`).
    """
    if reservations is None:
        return _bound_port()
    # Often under /tmp: made private, or refused if another user got there first.
    directory = private_directory(reservations)
    for _ in range(_ATTEMPTS):
        port = _bound_port()
        try:
            fd = os.open(
                directory / str(port),
                os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0),
                0o600,
            )
        except FileExistsError:
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return port
    raise NoFreePort(f"no unreserved free port after {_ATTEMPTS} attempts in {directory}")


def fill_port(text: str, port: int | None) -> str:
    """``text`` with every ``{port}`` replaced (other braces are left alone)."""
    if port is None:
        return text
    return text.replace(PORT_PLACEHOLDER, str(port))
