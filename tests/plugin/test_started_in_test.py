"""Executors a failing test started and already stopped are still described in its report."""

from __future__ import annotations

import pytest


def test_stopped_executor_gets_a_section(pytester: pytest.Pytester) -> None:
    """A service started and stopped inside the test body appears, stopped, with its output."""
    pytester.makepyfile(
        """
        import sys
        from mirakuru import Executor, SimpleExecutor, probes

        def test_fails():
            code = "import time; print('short lived', flush=True); time.sleep(60)"
            with Executor([sys.executable, "-c", code], ready=probes.banner("short")):
                pass
            assert False, "after the service stopped"

        def test_passes():
            with SimpleExecutor(["sleep", "60"]):
                pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- mirakuru: *short lived*",
            "state: stopped",
            "*running -> stopping*",
            "*stopping -> stopped*",
            "output tail:",
            "*short lived",
        ]
    )
    assert result.stdout.str().count("- mirakuru: ") == 1
