"""What a service fixture's start-up shows: a line while it takes long, and short reports
when it fails (the error, the command, the ``mirakuru:`` section; no internals)."""

from __future__ import annotations

import pytest

#: A service that starts listening on its port after 1.5 s.
SLOW = (
    "import socket, sys, time; time.sleep(1.5); server = socket.socket();"
    " server.bind(('127.0.0.1', int(sys.argv[1]))); server.listen(); time.sleep(60)"
)


def test_spawn_failure_is_short(pytester: pytest.Pytester) -> None:
    """A typo'd command, used by two tests: the error and the section, no subprocess source."""
    pytester.makeconftest(
        """
        from mirakuru import probes
        from mirakuru.pytest_plugin import service_fixture

        redis = service_fixture(
            ["redis-servr-typo", "--port", "{port}"],
            lambda port: probes.tcp("127.0.0.1", port),
        )
        """
    )
    pytester.makepyfile("def test_one(redis):\n    pass\n\ndef test_two(redis):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    assert "_execute_child" not in output
    assert "direct cause" not in output
    assert "During handling" not in output
    assert output.count("cannot start 'redis-servr-typo'") >= 2
    assert output.count("- mirakuru: redis -") == 2
    assert "command: redis-servr-typo --port " in output
    # Before this fix: 541 lines, most of them subprocess._execute_child source.
    assert len(result.outlines) < 60, output


def test_timeout_names_the_probe(pytester: pytest.Pytester) -> None:
    """The error in the report says which probe was not satisfied, and its last result."""
    pytester.makeconftest(
        """
        from mirakuru import probes
        from mirakuru.pytest_plugin import service_fixture

        silent = service_fixture(
            ["sleep", "60"], lambda port: probes.tcp("127.0.0.1", port), timeout=0.5
        )
        """
    )
    pytester.makepyfile("def test_needs_it(silent):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "E *TimeoutExpired: * timed out after 0.5 seconds; not ready: tcp 127.0.0.1:*:"
            " connection refused (* attempts)"
        ]
    )


def test_slow_start_shows_one_line(pytester: pytest.Pytester) -> None:
    """While a service fixture starts slowly, one line says what it still waits for."""
    pytester.makeconftest(
        f"""
        import sys
        import mirakuru.core.progress
        from mirakuru import probes
        from mirakuru.pytest_plugin import service_fixture

        # Our own threshold, lowered: the first report after 0.3 s instead of 5 s.
        mirakuru.core.progress.FIRST_REPORT = 0.3

        slow = service_fixture(
            [sys.executable, "-c", {SLOW!r}, "{{port}}"],
            lambda port: probes.tcp("127.0.0.1", port),
        )
        """
    )
    pytester.makepyfile("def test_one(slow):\n    pass\n\ndef test_two(slow):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    lines = [line for line in result.outlines if "still not ready" in line]
    assert len(lines) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["mirakuru: slow still not ready after 0.* s: tcp 127.0.0.1:*: connection refused (*)"]
    )
