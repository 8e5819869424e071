"""One web server for every pytest-xdist worker, and a config file made by a fixture."""

import subprocess
import sys

import pytest

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The files the server serves, written once per worker."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("hello")
    return root


def web_server(site, port):
    """The server's command, built from the ``site`` fixture and a free ``port``."""
    return {
        "command": [
            sys.executable,
            "-m",
            "http.server",
            "-d",
            str(site),
            "-b",
            "127.0.0.1",
            str(port),
        ],
        "ready": probes.http(f"http://127.0.0.1:{port}/"),
        "stderr": subprocess.DEVNULL,  # http.server logs every request there
    }


#: Read-only for the tests, so every worker can use the same instance.
web = service_fixture(web_server, shared=True)
