"""Reuse: how long the second pytest run of a project with a slow session service takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.worker.support import SERVICE, Context

#: The session service listens this long after its interpreter started.
NEEDS = 2.0
#: A bound on one pytest run (never a target).
_RUN_LIMIT = 120.0

CONFTEST = "from mirakuru.pytest_plugin import stack_fixture\n\nslow = stack_fixture('slow')\n"
TESTS = "def test_it(slow):\n    assert slow.port\n"


def _project(ctx: Context) -> tuple[Path, dict[str, str]]:
    folder = ctx.scratch("project")
    command = [sys.executable, str(SERVICE), "tcp", "--delay", str(NEEDS), "--port", "{port}"]
    command += ["--stamp", str(folder / "ready.stamp")]
    (folder / "mirakuru.toml").write_text(
        f"[services.slow]\ncommand = {json.dumps(command)}\n"
        'ready = { tcp = "127.0.0.1:{port}" }\n'
    )
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_it.py").write_text(TESTS)
    runtime = ctx.scratch("runtime")  # kept services' state stays in this run's directory
    runtime.chmod(0o700)
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "MIRAKURU_REUSE")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return folder, env


def _pytest(folder: Path, env: dict[str, str]) -> float:
    """Wall-clock seconds of one ``pytest`` run, from spawn to exit."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_RUN_LIMIT,
        check=False,
    )
    took = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return took


def second_run(ctx: Context) -> None:
    """The second of two pytest runs, without and with reuse (same project, same service)."""
    if getattr(ctx.mirakuru, "Stack", None) is None:
        ctx.status = "n/a"
        ctx.note("published mirakuru has no stacks and no reuse")
        return
    for _ in range(ctx.pick(3, 1)):
        folder, env = _project(ctx)
        _pytest(folder, env)
        ctx.record("plain_s", _pytest(folder, env))
        kept = {**env, "MIRAKURU_REUSE": "1"}
        try:
            _pytest(folder, kept)
            ctx.record("reuse_s", _pytest(folder, kept))
        finally:
            subprocess.run(
                [sys.executable, "-m", "mirakuru", "down", "--all"],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_RUN_LIMIT,
                check=False,
            )
        ctx.record("bare_s", _bare(folder, env))


def _bare(folder: Path, env: dict[str, str]) -> float:
    """The same run with a test that needs no service: pytest's own start and exit."""
    (folder / "conftest.py").write_text("")
    (folder / "test_it.py").write_text("def test_it():\n    pass\n")
    return _pytest(folder, env)
