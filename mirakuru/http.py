"""Wait for an HTTP(S) endpoint to answer: the drop-in ``HTTPExecutor``."""

from __future__ import annotations

import re
import urllib.parse
from http.client import HTTPConnection, HTTPException
from typing import Any

from mirakuru.core.command import CommandLike
from mirakuru.core.probes import Probe, http
from mirakuru.core.validate import check_duration
from mirakuru.tcp import TCPExecutor

__all__ = ["HTTPConnection", "HTTPException", "HTTPExecutor"]


class HTTPExecutor(TCPExecutor):
    """Ready once a request to ``url`` answers with a status matching ``status``.

    ``status`` is an int, a string or a regular expression matched at the start of the
    status code. Each request is bounded by ``request_timeout`` (``None`` or ``0``: the
    rest of the start-up budget). The request goes to ``host``:``port`` as they are when
    the check runs. ``https://`` URLs use TLS without certificate verification unless
    ``ssl_context=`` is given.
    """

    #: The port assumed for ``http://`` URLs that name none.
    DEFAULT_PORT = 80

    def __init__(
        self,
        command: CommandLike,
        url: str,
        status: str | int | re.Pattern[str] = r"^2\d\d$",
        method: str = "HEAD",
        payload: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        request_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Describe the process and the request; other arguments as for :class:`Executor`."""
        self._ssl_context = kwargs.pop("ssl_context", None)
        self._built_probe: tuple[object, Probe] | None = None
        self.url = urllib.parse.urlsplit(url)
        # What the published constructor refused; everything else is checked by start().
        if not self.url.hostname:
            raise ValueError(f"url must name a host, got {url!r}")
        check_duration("request_timeout", request_timeout, allow_none=True)
        self.status = status.pattern if isinstance(status, re.Pattern) else str(status)
        self.status_re = status if isinstance(status, re.Pattern) else re.compile(self.status)
        self.method = method
        self.payload = payload
        self.headers = headers
        self.request_timeout = request_timeout
        default_port = 443 if self.url.scheme == "https" else self.DEFAULT_PORT
        try:
            port = self.url.port or default_port
        except ValueError:
            raise ValueError(f"url has an invalid port: {url!r}") from None
        super().__init__(command, self.url.hostname, port, **kwargs)

    @property
    def _request_timeout(self) -> float | None:
        # The published attribute name, for subclasses that read it.
        return self.request_timeout

    def _derived_probe(self) -> Probe | None:
        # Checked every few ms while waiting: rebuild (and re-validate) only when an
        # attribute changed. Copies of the dicts, so a change made in place is seen too.
        key = (
            self.url,
            self.host,
            self.port,
            self.method,
            self.status,
            self.status_re,
            None if self.headers is None else dict(self.headers),
            None if self.payload is None else dict(self.payload),
            self.request_timeout,
            self._ssl_context,
        )
        built: tuple[object, Probe] | None = getattr(self, "_built_probe", None)
        if built is not None and built[0] == key:
            return built[1]
        probe = self._build_probe()
        self._built_probe = (key, probe)
        return probe

    def _build_probe(self) -> Probe:
        self._address_probe()  # a bad host or port is named as such
        host = f"[{self.host}]" if ":" in self.host else self.host
        target = urllib.parse.urlunsplit(
            (self.url.scheme, f"{host}:{self.port}", self.url.path, self.url.query, "")
        )
        status: str | re.Pattern[str] = self.status_re
        if isinstance(self.status, str) and self.status != self.status_re.pattern:
            status = self.status  # changed after construction: obey the newer one
        try:
            return http(
                target,
                method=self.method,
                headers=self.headers,
                payload=self.payload,
                status=status,
                request_timeout=self.request_timeout or None,
                ssl_context=self._ssl_context,
            )
        except (TypeError, ValueError) as error:
            raise type(error)(f"{type(self).__name__}: {error}") from None
