"""The ``mirakuru`` command: start a service and wait until it is ready, or wait for one.

``mirakuru run [readiness] -- COMMAND...`` starts COMMAND, waits until every readiness
option holds, then keeps it in the foreground until Ctrl-C or SIGTERM (or runs ``--then``)
and stops its whole process tree. ``mirakuru wait [readiness]`` waits for a service that
something else started. The options live in :mod:`.args`, the terminal in :mod:`.console`
and the two commands in :mod:`.commands`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from mirakuru.cli.args import fill_port_everywhere, parse, readiness_probe
from mirakuru.cli.commands import run, wait
from mirakuru.cli.console import Console
from mirakuru.cli.stack_args import STACK_ACTIONS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``mirakuru --help``)."""
    args = parse(argv)
    if args.action in STACK_ACTIONS:
        from mirakuru.cli.stack_commands import stack_main

        return stack_main(args)
    sub = args.subparser
    port = fill_port_everywhere(args)
    probe = readiness_probe(args, sub)
    console = Console(sys.stderr, quiet=args.quiet or args.json, live=sys.stderr.isatty())
    if args.action == "wait":
        if probe is None:
            sub.error("wait needs at least one readiness option (--tcp, --http, ...)")
        assert probe is not None  # sub.error() exits
        code, result = wait(args, probe, console)
    else:
        code, result = run(args, probe, port, console)
    if args.json:
        document = {"action": args.action, "exit_code": code, **result}
        print(json.dumps(document, indent=None), flush=True)
    return code
