"""Running the ``mirakuru`` command in a subprocess and checking what it leaves behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

import attrs

from tests.helpers import PYTHON, processes_with_token_prefix, wait_until

__all__ = ["Finished", "assert_nothing_left", "mirakuru", "run_cli", "start_cli", "tcp_server"]

#: Every CLI run in the tests ends well within this (they take a fraction of a second).
CLI_LIMIT = 30.0


def mirakuru(*args: str) -> list[str]:
    """The command line running ``python -m mirakuru`` with ``args``."""
    return [PYTHON, "-m", "mirakuru", *args]


@attrs.frozen
class Finished:
    """What a finished CLI run left: its PID, exit status and output."""

    pid: int
    returncode: int
    stdout: str
    stderr: str


_UNSIZED = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}


def start_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``mirakuru`` with ``args`` (stdout and stderr captured, no terminal).

    ``env`` adds to this process's environment, less COLUMNS and LINES: GNU readline, once
    imported (pytest's debugger does), exports them to child processes (xdist's workers
    included), and COLUMNS decides how messages are wrapped. A test that wants a width says so.
    """
    return subprocess.Popen(
        mirakuru(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_UNSIZED, **(env or {})},
    )


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Finished:
    """Run ``mirakuru`` with ``args`` to completion (bounded) and check it left nothing."""
    process = start_cli(*args, env=env)
    try:
        stdout, stderr = process.communicate(timeout=CLI_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert_nothing_left(process.pid)
    return Finished(process.pid, process.returncode, stdout, stderr)


def assert_nothing_left(cli_pid: int) -> None:
    """No process started by the CLI with PID ``cli_pid`` (marked by its executor) is alive."""
    prefix = f"{cli_pid}:"
    assert wait_until(lambda: not processes_with_token_prefix(prefix), 5.0), (
        f"processes of mirakuru (PID {cli_pid}) outlived it: "
        f"{[p.pid for p in processes_with_token_prefix(prefix)]}"
    )


def tcp_server(port: str = "{port}", *, child: bool = False, exit_after: bool = False) -> list[str]:
    """A service listening on ``port`` that prints ``listening``.

    With ``child``, it first starts a grandchild (a sleeping process) that must be stopped
    with it; with ``exit_after``, it exits with code 9 right after its first connection.
    """
    source = [
        "import socket, subprocess, sys, time",
        "kid = subprocess.Popen(['sleep', '60'])" if child else "",
        "server = socket.socket()",
        "server.bind(('127.0.0.1', int(sys.argv[1])))",
        "server.listen()",
        "print('listening', flush=True)",
        "server.accept()" if exit_after else "time.sleep(60)",
        "sys.exit(9)",
    ]
    return [PYTHON, "-c", "\n".join(line for line in source if line), port]


def lines(text: str) -> Sequence[str]:
    """Non-empty lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()]
