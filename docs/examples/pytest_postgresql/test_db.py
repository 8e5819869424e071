"""A test that talks to the session's PostgreSQL."""

import subprocess


def test_query(postgresql):
    """psql reaches the server on the port the plugin chose."""
    answer = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgresql.port),
            "-U",
            "tests",
            "-d",
            "postgres",
            "-tAc",
            "SELECT 40 + 2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.strip() == "42"
