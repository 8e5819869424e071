"""The options of the stack commands: ``up``, ``status``, ``logs`` and ``down``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["STACK_ACTIONS", "STACK_EXIT_CODES", "add_stack_parsers"]

STACK_ACTIONS = ("up", "status", "logs", "down")

STACK_EXIT_CODES = """\
exit status of up:
  0     stopped cleanly after Ctrl-C or SIGTERM; --detach: ready, or already up
  2     bad options, or a mistake in the stack file (named with its key path)
  3     a service was not ready within its timeout (everything is stopped)
  4     a service could not be started, or exited before it was ready
  5     a service exited on its own while running (after its restarts, if any)
  6     a service exited with an unexpected status when stopped
  128+N interrupted by signal N before every service was ready (130 for Ctrl-C)
  with --then, once every service is ready: the --then command's exit status
status: 0 while the stack runs, 3 when it does not; down: 0 once nothing is left
(status --all: 0 while any stack runs)
"""


def _file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--file",
        metavar="PATH",
        help="the stack file (default: the nearest mirakuru.toml, or pyproject.toml with"
        " [tool.mirakuru], in this directory or a parent)",
    )


def _all_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("-a", "--all", action="store_true", help=text)


def add_stack_parsers(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``up``, ``status``, ``logs`` and ``down`` to the ``mirakuru`` command."""
    raw = argparse.RawDescriptionHelpFormatter
    up = commands.add_parser(
        "up",
        help="start the services of mirakuru.toml, each once its dependencies are ready",
        description=(
            "Start the named services (default: all) and what they depend on, each once\n"
            "its dependencies' conditions hold; stream their output until Ctrl-C or\n"
            "SIGTERM, then stop them, dependents first."
        ),
        epilog=STACK_EXIT_CODES,
        formatter_class=raw,
    )
    up.add_argument("names", nargs="*", metavar="NAME", help="services to start (default: all)")
    _file_option(up)
    mode = up.add_mutually_exclusive_group()
    mode.add_argument(
        "--then",
        metavar="CMD",
        help="once every service is ready, run CMD with the shell (MIRAKURU_<NAME>_PORT in"
        " its environment), stop the stack, exit with CMD's status",
    )
    mode.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="return once every service is ready; a supervisor keeps them running"
        " (see status, logs, down)",
    )
    up.add_argument(
        "-q", "--quiet", action="store_true", help="print no state changes, only errors"
    )
    up.add_argument("--no-color", action="store_true", help="no colours, even on a terminal")
    up.set_defaults(subparser=up)

    status = commands.add_parser(
        "status",
        help="show the services of a running stack: state, PID, port, uptime, restarts",
        description="Show every service of the running stack (foreground or detached).",
        epilog=STACK_EXIT_CODES,
        formatter_class=raw,
    )
    _file_option(status)
    _all_option(status, "show every stack this user runs, wherever its file is")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.set_defaults(subparser=status)

    logs = commands.add_parser(
        "logs",
        help="show a service's output",
        description="Print what service NAME of the running (or last) stack printed.",
    )
    logs.add_argument("name", metavar="NAME", help="the service")
    _file_option(logs)
    logs.add_argument(
        "-F", "--follow", action="store_true", help="keep printing new output until it stops"
    )
    logs.set_defaults(subparser=logs)

    down = commands.add_parser(
        "down",
        help="stop a detached stack (or services kept for test runs) and wait until nothing"
        " of it is left",
        description="Stop the stack started with 'up --detach', or the services test runs\n"
        "keep (--mirakuru-reuse), dependents first.",
        formatter_class=raw,
    )
    _file_option(down)
    _all_option(down, "stop every detached stack and every kept service of this user")
    down.set_defaults(subparser=down)
