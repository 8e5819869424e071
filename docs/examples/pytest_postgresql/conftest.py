"""A throw-away PostgreSQL cluster per test session: initdb in a fixture, then the server."""

import signal
import subprocess

import pytest

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture


@pytest.fixture(scope="session")
def pg_data(tmp_path_factory):
    """A fresh cluster directory, made by initdb."""
    data = tmp_path_factory.mktemp("pgdata")
    subprocess.run(
        ["initdb", "--auth=trust", "--username=tests", "-D", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return data


def postgres_server(pg_data, port):
    """The server for that cluster, on a free port, ready once it accepts queries."""
    return {
        "command": [
            "postgres",
            "-D",
            str(pg_data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(pg_data),
        ],
        "ready": probes.all_of(
            probes.tcp("127.0.0.1", port),
            probes.banner("database system is ready to accept connections", streams=["stderr"]),
        ),
    }


#: SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
postgresql = service_fixture(postgres_server, stop_signal=signal.SIGINT)
