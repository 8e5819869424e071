"""Services for the example test suite: declared once, started on demand, always stopped."""

import subprocess
import sys

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

#: A web server on a free port, shared by the whole session; "{port}" is filled in.
web = service_fixture(
    [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
    ready=lambda port: probes.http(f"http://127.0.0.1:{port}/"),
    stderr=subprocess.DEVNULL,  # http.server logs every request there
)

#: A fresh process for each test that needs one.
worker = service_fixture(["sleep", "600"], scope="function")
