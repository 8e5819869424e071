"""Wait for an HTTP(S) endpoint to answer: the drop-in ``HTTPExecutor``."""

from __future__ import annotations

import re
import urllib.parse
from http.client import HTTPConnection, HTTPException
from typing import Any

from mirakuru.core.probes import Probe, http, tcp
from mirakuru.tcp import TCPExecutor

__all__ = ["HTTPConnection", "HTTPException", "HTTPExecutor"]


class HTTPExecutor(TCPExecutor):
    """Ready once a request to ``url`` answers with a status matching ``status``.

    ``status`` is an int, a string or a regular expression matched at the start of the
    status code. Each request is bounded by ``request_timeout`` (default: the executor's
    ``timeout``) and by what remains of the start-up deadline. ``https://`` URLs use TLS
    without certificate verification unless ``ssl_context=`` is given.
    """

    #: The port assumed for ``http://`` URLs that name none.
    DEFAULT_PORT = 80

    def __init__(
        self,
        command: str | list[str] | tuple[str, ...],
        url: str,
        status: str | int | re.Pattern[str] = r"^2\d\d$",
        method: str = "HEAD",
        payload: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        request_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Describe the process and the request; other arguments as for :class:`Executor`."""
        ssl_context = kwargs.pop("ssl_context", None)
        probe = http(
            url,
            method=method,
            headers=headers,
            payload=payload,
            status=status,
            request_timeout=request_timeout,
            ssl_context=ssl_context,
        )
        self.url = urllib.parse.urlsplit(url)
        self.status = status.pattern if isinstance(status, re.Pattern) else str(status)
        self.status_re = probe.status
        self.method = method
        self.payload = payload
        self.headers = headers
        self.request_timeout = request_timeout
        default_port = 443 if self.url.scheme == "https" else self.DEFAULT_PORT
        port = self.url.port or default_port
        kwargs["ready"] = probe
        super().__init__(command, self.url.hostname or "", port, **kwargs)

    def _occupied_probe(self) -> Probe | None:
        # Anything listening on the port means our server could not bind it.
        return tcp(self.host, self.port)
