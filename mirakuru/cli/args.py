"""The command line's options: the parser, the exit statuses and the readiness probe they build."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

from mirakuru import __version__
from mirakuru.adapter.ports import PORT_PLACEHOLDER, fill_port, free_port
from mirakuru.cli.stack_args import add_stack_parsers
from mirakuru.core import probes
from mirakuru.core.probes import Probe

__all__ = [
    "DIED",
    "NOT_READY",
    "OK",
    "SIGNALLED",
    "START_FAILED",
    "UNCLEAN_STOP",
    "USAGE",
    "build_parser",
    "fill_port_everywhere",
    "parse",
    "readiness_probe",
]

# Exit statuses (documented in --help and docs/cli.rst).
OK = 0
USAGE = 2
NOT_READY = 3
START_FAILED = 4
DIED = 5
UNCLEAN_STOP = 6
#: Added to a signal number when a process ended by that signal, as a shell reports it.
SIGNALLED = 128

EXIT_CODES = f"""\
exit status:
  {OK}     ready (wait); stopped cleanly after Ctrl-C or SIGTERM (run)
  {USAGE}     bad options
  {NOT_READY}     not ready within --timeout (the service is stopped)
  {START_FAILED}     the service could not be started or exited before it was ready
  {DIED}     the service exited on its own while running (run without --then)
  {UNCLEAN_STOP}     the service exited with an unexpected status when stopped (run without --then)
  128+N interrupted by signal N before the service was ready (130 for Ctrl-C)
  with --then, once the service is ready: the exit status of the --then command
  --json reports every exit status the same way (128+N for a process ended by signal N)
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _RunOnly(argparse.Action):
    """An option of ``run`` given to ``wait``: say why it cannot work there."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} works with 'mirakuru run' only: wait does not start the"
            " service, so it cannot watch its output or its notifications"
        )


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _add_readiness(parser: argparse.ArgumentParser, *, own_process: bool) -> None:
    group = parser.add_argument_group(
        "readiness (several options: all must hold; {port} is replaced by a free port)"
    )
    group.add_argument(
        "--tcp",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="ready once a TCP connection to HOST:PORT is accepted ([::1]:PORT for IPv6)",
    )
    group.add_argument(
        "--http",
        action="append",
        default=[],
        metavar="URL",
        help="ready once a request to URL answers with a status matching --status",
    )
    group.add_argument(
        "--status",
        default=r"^2\d\d$",
        metavar="REGEX",
        help=r"HTTP status to wait for, a number or a regex (default: ^2\d\d$)",
    )
    group.add_argument(
        "--method", default="HEAD", help="HTTP method of the --http request (default: HEAD)"
    )
    group.add_argument(
        "--pid-file",
        action="append",
        default=[],
        metavar="PATH",
        help="ready once the file PATH exists",
    )
    group.add_argument(
        "--unix-socket",
        action="append",
        default=[],
        metavar="PATH",
        help="ready once a connection to the unix socket PATH is accepted",
    )
    if own_process:
        group.add_argument(
            "--output",
            action="append",
            default=[],
            metavar="REGEX",
            help="ready once a line of the service's stdout or stderr matches REGEX",
        )
        group.add_argument(
            "--notify",
            action="store_true",
            help="ready once the service sends READY=1 to $NOTIFY_SOCKET (systemd protocol)",
        )
    else:
        group.add_argument("--output", action=_RunOnly, help=argparse.SUPPRESS)
        group.add_argument("--notify", action=_RunOnly, nargs=0, help=argparse.SUPPRESS)
    group.add_argument(
        "--timeout",
        type=_duration,
        default=60.0,
        metavar="SECONDS",
        help="give up if not ready within SECONDS (default: 60)",
    )


def _add_reporting(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument(
        "--json",
        action="store_true",
        help=(
            "print one JSON object with the result and its timings on stdout at the end;"
            " stdout carries nothing else (the --then command's stdout goes to stderr)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``mirakuru run`` and ``mirakuru wait``."""
    parser = _Parser(
        prog="mirakuru",
        description="Start a service, wait until it is ready, and stop its whole process tree.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mirakuru {__version__}")
    commands = parser.add_subparsers(
        dest="action", required=True, metavar="{run,wait,up,status,logs,down}"
    )
    run = commands.add_parser(
        "run",
        help="start COMMAND, wait until ready, keep it running (or run --then), stop it",
        description=(
            "Start COMMAND, wait until it is ready, then keep it running until Ctrl-C or "
            "SIGTERM, or run --then CMD; finally stop its whole process tree."
        ),
        usage="mirakuru run [options] -- COMMAND [ARG...]",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_readiness(run, own_process=True)
    run.add_argument(
        "--stop-timeout",
        type=_duration,
        default=10.0,
        metavar="SECONDS",
        help="grace period between the stop signal and SIGKILL (default: 10)",
    )
    run.add_argument(
        "--then",
        metavar="CMD",
        help="once ready, run CMD with the shell, stop the service, exit with CMD's status",
    )
    run.add_argument(
        "--hide-output",
        action="store_true",
        help="do not copy the service's output to stderr (its last lines still show on errors)",
    )
    _add_reporting(run)
    run.set_defaults(subparser=run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="the service to start")
    wait = commands.add_parser(
        "wait",
        help="wait until a service started by something else is ready",
        description="Wait until every readiness option holds; exit 0 when ready.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_readiness(wait, own_process=False)
    _add_reporting(wait)
    wait.set_defaults(subparser=wait)
    add_stack_parsers(commands)
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a mistake exits with status 2 and one line naming the option."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    sub: argparse.ArgumentParser = args.subparser
    if unknown:
        # The sub-command's parser names itself ("mirakuru run: ..."), the top one would not.
        sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.action == "run":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            sub.error("run needs a COMMAND after --")
    return args


# The library's messages start with its parameter's name ("url must ..."): the option replaces it.
_PARAMETER = re.compile(r"^[a-z_]+ (?=must |is |expects |cannot )")


def _option_error(parser: argparse.ArgumentParser, option: str, error: Exception) -> NoReturn:
    parser.error(f"{option}: {_PARAMETER.sub('', str(error), count=1)}")


def _build(parser: argparse.ArgumentParser, option: str, make: Callable[[], Probe]) -> Probe:
    try:
        return make()
    except (TypeError, ValueError) as error:
        _option_error(parser, option, error)


def _tcp(address: str) -> Probe:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expects HOST:PORT, got {address!r}")
    return probes.tcp(host.removeprefix("[").removesuffix("]"), int(port))


def readiness_probe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Probe | None:
    """The readiness options as one probe (all must hold), or None when there are none."""
    found = [_build(parser, "--tcp", partial(_tcp, a)) for a in args.tcp]
    if args.http:
        _build(parser, "--status", partial(probes.http, "http://x/", status=args.status))
        _build(parser, "--method", partial(probes.http, "http://x/", method=args.method))
    http = partial(probes.http, method=args.method, status=args.status)
    found += [_build(parser, "--http", partial(http, url)) for url in args.http]
    found += [
        _build(parser, "--unix-socket", partial(probes.unix_socket, p)) for p in args.unix_socket
    ]
    found += [_build(parser, "--pid-file", partial(probes.pid_file, p)) for p in args.pid_file]
    if args.action == "run":
        banner = partial(probes.banner, streams=("stdout", "stderr"))
        found += [_build(parser, "--output", partial(banner, p)) for p in args.output]
        if args.notify:
            found.append(probes.sd_notify())
    return probes.all_of(*found) if found else None


def fill_port_everywhere(args: argparse.Namespace) -> int | None:
    """Pick a free port if ``{port}`` appears anywhere, and substitute it everywhere."""
    fields = ("tcp", "http", "unix_socket", "pid_file", "output", "command")
    texts = [text for name in fields for text in (getattr(args, name, None) or [])]
    texts.append(getattr(args, "then", None) or "")
    if not any(PORT_PLACEHOLDER in text for text in texts):
        return None
    port = free_port()
    for name in fields:
        values = getattr(args, name, None)
        if values:
            setattr(args, name, [fill_port(text, port) for text in values])
    if getattr(args, "then", None):
        args.then = fill_port(args.then, port)
    return port
