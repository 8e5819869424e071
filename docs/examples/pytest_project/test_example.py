"""Tests that use the services declared in conftest.py."""

import urllib.request


def test_the_server_answers(web):
    """The fixture is the started executor; its port is the one it was given."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/") as response:
        assert response.status == 200


def test_a_worker_per_test(worker):
    """A function-scoped service is running during the test and stopped after it."""
    assert worker.running()
