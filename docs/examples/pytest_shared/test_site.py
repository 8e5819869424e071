"""Tests that read from the one shared server, whichever worker runs them."""

import urllib.request

import pytest


@pytest.mark.parametrize("attempt", range(4))
def test_index(web, attempt):
    """Every worker reaches the same server on the same port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/index.html") as response:
        assert response.read() == b"hello"
