"""Run one worker process, bounded in time, and never leave processes behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import reaper
from benchmarks.catalog import TOKEN_VAR
from benchmarks.venvs import Venv

BENCHMARKS_DIR = Path(__file__).resolve().parent


@dataclass
class RunResult:
    """What one worker run produced."""

    #: "ok", "n/a", "error" or "timeout".
    status: str
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    detail: str = ""
    wall_s: float = 0.0
    #: Processes the harness had to kill after the worker was gone.
    leaked: int = 0


class Sandbox:
    """Where workers run: a scratch cwd and a PYTHONPATH that holds only us.

    PYTHONPATH points at a temp dir whose single entry is a symlink to this
    ``benchmarks`` package.  Putting the repository root on the path instead
    would let ``import mirakuru`` find the checkout rather than the installed
    copy under test.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mirakuru-bench-")
        self.root = Path(self._tmp.name)
        self.pythonpath = self.root / "path"
        self.pythonpath.mkdir()
        (self.pythonpath / "benchmarks").symlink_to(BENCHMARKS_DIR)
        self.cwd = self.root / "cwd"
        self.cwd.mkdir()

    def close(self) -> None:
        self._tmp.cleanup()


def _tail(path: Path, lines: int = 12) -> str:
    text = path.read_text(errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def _parse(stdout: Path, venv: Venv) -> RunResult:
    lines = stdout.read_text(errors="replace").strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return RunResult("error", detail="worker printed no JSON result")
    where = Path(data["mirakuru_file"])
    if not where.is_relative_to(venv.path.resolve()):
        # Guard against the classic mistake: benchmarking the source tree, or
        # some other installation, instead of the venv's copy.
        return RunResult("error", detail=f"imported mirakuru from {where}")
    return RunResult(data["status"], metrics=data["metrics"], notes=data["notes"])


def run_worker(
    venv: Venv,
    scenario: str,
    quick: bool,
    timeout: float,
    sandbox: Sandbox,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        {
            "PYTHONPATH": str(sandbox.pythonpath),
            "PYTHONDONTWRITEBYTECODE": "1",
            TOKEN_VAR: token,
        }
    )
    env.pop("VIRTUAL_ENV", None)
    env.pop("MIRAKURU_PORTABLE", None)  # only --portable sets it, and only for ours
    env.update(extra_env or {})
    cmd = [str(venv.python), "-m", "benchmarks.worker", scenario]
    cmd += ["--impl", venv.impl, "--json"] + (["--quick"] if quick else [])
    stdout = sandbox.root / f"{token}.out"
    stderr = sandbox.root / f"{token}.err"
    begin = time.monotonic()
    # Output goes to files, not pipes: a leftover grandchild holding a pipe open
    # would make us wait for EOF long after the worker itself is gone.
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=sandbox.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own group: one killpg ends it all
        )
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        except BaseException:  # e.g. Ctrl-C: still clean up before leaving
            _kill_group(proc)
            reaper.reap(TOKEN_VAR, token)
            raise
        finally:
            _kill_group(proc)
    wall = time.monotonic() - begin
    leaked = reaper.reap(TOKEN_VAR, token)
    if returncode is None:
        result = RunResult("timeout", detail=f"no result after {timeout:g} s")
        if leaked:
            result.detail += f" (then killed {leaked} leftover processes)"
    elif returncode != 0:
        result = RunResult("error", detail=_tail(stderr) or f"exit {returncode}")
    else:
        result = _parse(stdout, venv)
    result.wall_s = wall
    result.leaked = leaked
    stdout.unlink(missing_ok=True)
    stderr.unlink(missing_ok=True)
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
