import socket

import pytest

from mirakuru.pytest_plugin import stack_fixture

cache = stack_fixture("cache")


@pytest.fixture(scope="session")
def ask(cache):
    """Send one command to the cache; its raw answer."""

    def ask(command):
        with socket.create_connection(("127.0.0.1", cache.port), timeout=5) as connection:
            connection.sendall(command.encode() + b"\r\n")
            return connection.recv(1024)

    return ask


@pytest.fixture(scope="session", autouse=True)
def empty_cache(ask):
    # A kept redis still holds what the last run wrote: every run starts from nothing.
    assert ask("FLUSHALL") == b"+OK\r\n"
