"""``{port}`` and ``{NAME.port}`` in a service's fields, and the probe its ``ready`` table makes.

A placeholder is an identifier in braces; ``{{port}}`` is a literal ``{port}``, and braces
around anything else (``{}``, JSON, shell's ``${HOME}``) are left alone.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator, Mapping

from mirakuru.core import probes
from mirakuru.core.probes import Probe
from mirakuru.core.stack.model import ReadySpec

__all__ = [
    "OWN_PORT",
    "build_probe",
    "fill",
    "placeholders",
    "port_of",
    "ready_table",
    "tcp_address",
]

OWN_PORT = "port"
_PORT_SUFFIX = ".port"
_TOKEN = re.compile(r"\{\{([A-Za-z0-9_][\w.-]*)\}\}|(?<!\$)\{([A-Za-z0-9_][\w.-]*)\}")


def placeholders(text: str) -> Iterator[str]:
    """The placeholders in ``text``, in order: ``port``, ``cache.port``, ``typo``..."""
    for match in _TOKEN.finditer(text):
        if match.group(2) is not None:
            yield match.group(2)


def port_of(placeholder: str) -> str | None:
    """The service whose port ``placeholder`` means (None: not a port placeholder).

    ``port`` names the service itself, returned as the empty string.
    """
    if placeholder == OWN_PORT:
        return ""
    if placeholder.endswith(_PORT_SUFFIX) and placeholder.count(".") == 1:
        return placeholder.removesuffix(_PORT_SUFFIX)
    return None


def fill(text: str, own: str, ports: Mapping[str, int]) -> str:
    """``text`` with each placeholder replaced by a port from ``ports`` (by service name).

    ``own`` is the service the text belongs to, for ``{port}``. A placeholder that names
    no known port is left as written (validation reports those before any start).
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        service = port_of(match.group(2))
        if service is None:
            return match.group(0)
        port = ports.get(service or own)
        return str(port) if port is not None else match.group(0)

    return _TOKEN.sub(replace, text)


def tcp_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port number."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expects HOST:PORT, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def build_probe(ready: ReadySpec, cwd: str, text: Callable[[str], str]) -> Probe:
    """The probe ``ready`` describes; ``text`` fills placeholders in each field.

    Relative ``pid_file`` and ``unix_socket`` paths are relative to ``cwd``. A field
    that cannot make a probe raises ``ValueError`` or ``TypeError`` whose first word
    names the field, as the probe factories do.
    """
    found: list[Probe] = []
    if ready.tcp is not None:
        host, port = tcp_address(text(ready.tcp))
        found.append(probes.tcp(host, port))
    if ready.http is not None:
        options: dict[str, object] = {}
        if ready.status is not None:
            options["status"] = (
                text(ready.status) if isinstance(ready.status, str) else (ready.status)
            )
        if ready.method is not None:
            options["method"] = text(ready.method)
        found.append(probes.http(text(ready.http), **options))  # type: ignore[arg-type]
    elif ready.status is not None or ready.method is not None:
        raise ValueError("status and method describe the http check: add http = URL")
    if ready.output is not None:
        found.append(probes.banner(text(ready.output), streams=("stdout", "stderr")))
    if ready.pid_file is not None:
        found.append(probes.pid_file(posixpath.join(cwd, text(ready.pid_file))))
    if ready.unix_socket is not None:
        found.append(probes.unix_socket(posixpath.join(cwd, text(ready.unix_socket))))
    if ready.notify:
        found.append(probes.sd_notify())
    if not found:
        raise ValueError(
            "ready has no check: give tcp, http, output, pid_file, unix_socket or notify"
        )
    return probes.all_of(*found)


def _host_port(host: str, port: int, own: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{{{OWN_PORT}}}" if port == own else f"{shown}:{port}"


def ready_table(probe: Probe, own: int) -> dict[str, object]:
    """The ``ready`` table that makes ``probe`` again (the inverse of :func:`build_probe`),
    with the port ``own`` written as ``{port}``. A probe the table cannot say (``any_of``,
    HTTP headers or a payload, two checks of one kind) raises ``TypeError`` naming it."""
    table: dict[str, object] = {}
    leaves = probe.probes if isinstance(probe, probes.AllOf) else (probe,)
    for leaf in leaves:
        entry: dict[str, object]
        if isinstance(leaf, probes.Tcp):
            entry = {"tcp": _host_port(leaf.host, leaf.port, own)}
        elif isinstance(leaf, probes.Http) and not leaf.headers and leaf.payload is None:
            parts = leaf.parts
            url = leaf.url
            if parts.port == own and parts.hostname is not None:
                netloc = _host_port(parts.hostname, own, own)
                url = parts._replace(netloc=netloc).geturl()
            entry = {"http": url, "method": leaf.method, "status": leaf.status.pattern}
        elif isinstance(leaf, probes.Banner):
            entry = {"output": leaf.pattern.pattern}
        elif isinstance(leaf, probes.PidFile):
            entry = {"pid_file": leaf.path}
        elif isinstance(leaf, probes.UnixSocket):
            entry = {"unix_socket": leaf.path}
        elif isinstance(leaf, probes.SdNotify):
            entry = {"notify": True}
        else:
            raise TypeError(f"{leaf!r} cannot be written as a ready table")
        if table.keys() & entry.keys():
            raise TypeError(f"{probe!r} checks one kind twice: a ready table cannot say that")
        table.update(entry)
    return table
