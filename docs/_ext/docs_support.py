"""Helpers the documentation's examples use: scratch space, free ports and a leak check.

Imported by ``doctest_global_setup`` so that every example can run real processes without
fixed ports or leftovers.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points

import psutil

from mirakuru.base import ENV_UUID

__all__ = [
    "REPO",
    "free_port",
    "leaked_processes",
    "postgres_bin_dir",
    "run_pytest",
    "scratch_dir",
    "shell",
    "skip_unless_installed",
    "wait_until_gone",
]

#: The repository root, for examples that start a Python process importing this checkout.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it; nothing is hard-coded)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def scratch_dir(prefix: str = "mirakuru-docs-") -> str:
    """A fresh temporary directory, removed when the docs build ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def leaked_processes() -> list[str]:
    """Processes still alive that an executor of this build started (by their marker)."""
    mine = f"{os.getpid()}:"
    found = []
    for process in psutil.process_iter(["pid", "name", "status"]):
        try:
            token = process.environ().get(ENV_UUID, "")
        except (psutil.Error, OSError):
            continue
        if token.startswith(mine) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{process.info['name']} (PID {process.info['pid']})")
    return found


def skip_unless_installed(*programs: str) -> bool:
    """True (skip) when a program an example needs is missing, except in CI, where it fails."""
    if os.environ.get("CI"):
        return False
    return any(shutil.which(program) is None for program in programs)


def postgres_bin_dir() -> str | None:
    """Where the PostgreSQL server programs are (Debian keeps them off ``PATH``), if anywhere."""
    found = shutil.which("postgres")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(candidates[-1]) if candidates else None


def wait_until_gone(processes: list[psutil.Process], timeout: float = 30.0) -> bool:
    """Wait (bounded) until every process has exited; True if they all did.

    A process that has exited but is not yet reaped (a zombie, typically an orphan waiting
    for PID 1) counts as gone: it runs nothing and holds nothing but a table entry.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not any(_alive(process) for process in processes):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_pytest(project: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on a copy of an example project, with this checkout's mirakuru plugin."""
    copy = shutil.copytree(project, os.path.join(scratch_dir("pytest-"), "project"))
    plugin = [] if _plugin_installed() else ["-p", "mirakuru.pytest_plugin"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, copy],
        capture_output=True,
        text=True,
        cwd=copy,
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=120,
        check=False,
    )


def _plugin_installed() -> bool:
    """Whether an installed mirakuru registers the plugin (then pytest loads it by itself)."""
    return any(ep.value == "mirakuru.pytest_plugin" for ep in entry_points(group="pytest11"))


def shell(command_line: str, timeout: float = 120) -> None:
    """Run a shell command line in which ``mirakuru`` is this checkout's command.

    Prints the command's standard output and its exit status, as a terminal would show.
    """
    mirakuru = f'mirakuru() {{ "{sys.executable}" -m mirakuru "$@"; }}\n'
    result = subprocess.run(
        ["bash", "-c", mirakuru + command_line],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        timeout=timeout,
        check=False,
    )
    print(result.stdout, end="")
    print(f"exit status: {result.returncode}")
