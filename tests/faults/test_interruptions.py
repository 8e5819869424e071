"""Interruptions at every point of start() and stop(), each run in a child interpreter
bounded by a timeout, so that a deadlock fails the test instead of hanging the suite.

- :mod:`tests.faults.lock_sites`: a garbage collection (``__del__`` -> ``kill()``) and a
  signal handler (-> ``kill()``) at every lock acquisition of mirakuru's own code;
- :mod:`tests.faults.ctrl_c`: Ctrl-C at every line of start() and stop(), and real SIGINTs
  at random moments.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.faults.programs import REPO

#: The drivers' bound; they finish in a fraction of it on an idle 2-core machine.
LIMIT = 900.0


def drive(module: str, *args: str) -> list[str]:
    """Run ``python -m module args`` from the repository; its lines (bounded by LIMIT)."""
    environment = {**os.environ, "LOCK_SITES_HANG_LIMIT": str(LIMIT - 60)}
    try:
        finished = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{module} hung (a deadlock?); its output so far:\n{expired.stdout!r}")
    lines = finished.stdout.splitlines()
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
    assert lines, finished.stderr
    assert lines[-1].startswith("DONE"), f"{finished.stdout}\n{finished.stderr}"
    problems = [line for line in lines if line.startswith("PROBLEM")]
    assert not problems, "\n".join(problems)
    return lines


class TestLockSites:
    """Nothing a finalizer or a signal handler does while one of our locks is held waits
    for that lock: kill() from __del__ or from a handler, at every site, never hangs."""

    def test_gc_and_signals_at_every_lock_site(self) -> None:
        """Every lock site of start/stop met by a collection and by two kinds of handler."""
        lines = drive("tests.faults.lock_sites")
        sites = {line.split()[2] for line in lines if line.startswith("SITE")}
        kinds = {line.split()[1] for line in lines if line.startswith("SITE")}
        assert kinds == {"gc", "signal", "self"}
        # The module locks the finalizers used to wait on, and the executor's own.
        for expected in (
            "adapter/guard/registry.py",
            "adapter/guard/watchdog.py",
            "adapter/run/reactor.py",
            "base.py",
            "group.py",
        ):
            assert any(site.startswith(expected) for site in sites), sorted(sites)
        assert len(sites) >= 15, sorted(sites)


class TestCtrlC:
    """Ctrl-C anywhere in start() or stop() leaves no process and an honest state."""

    @pytest.mark.parametrize("phase", ["start", "stop"])
    def test_at_every_line(self, phase: str) -> None:
        """A SIGINT at each line of mirakuru's code that the call runs."""
        lines = drive("tests.faults.ctrl_c", "lines", phase, "simple", "output", "pid")
        runs = int(lines[-1].split()[1])
        assert runs > 200

    def test_at_random_moments(self) -> None:
        """Real SIGINTs from another thread, landing in library code and ours alike."""
        lines = drive("tests.faults.ctrl_c", "random", "30", "28", "simple", "output", "pid")
        interrupted = int(lines[-1].split()[1])
        assert interrupted > 20  # enough of 180 landed inside a call to mean something
