"""The command line's options: the parser, the exit statuses and the readiness probe they build."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

from mirakuru import __version__
from mirakuru.adapter.ports import PORT_PLACEHOLDER, fill_port, free_port
from mirakuru.cli.console import terminal_columns, wrap
from mirakuru.cli.stack_args import add_stack_parsers
from mirakuru.core import probes
from mirakuru.core.probes import Probe

__all__ = [
    "CANNOT_EXECUTE",
    "DIED",
    "NOT_FOUND",
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
#: A ``wait -- COMMAND`` that cannot be executed, or is not found: the shell's statuses.
CANNOT_EXECUTE = 126
NOT_FOUND = 127

# Each table is laid out by hand, so every line fits an 80-column terminal.
EXIT_CODES = f"""\
exit status (see 'mirakuru run --help' and 'mirakuru wait --help'):
  {OK}      ready (wait); stopped cleanly after Ctrl-C or SIGTERM (run)
  {USAGE}      bad options
  {NOT_READY}      not ready within --timeout
  {START_FAILED}      run: the service could not be started, or exited before it was ready
  {DIED}      run: the service exited on its own while running
  {UNCLEAN_STOP}      run: the service ended with an unexpected status when stopped
  128+N  interrupted by signal N before the service was ready (130 for Ctrl-C)
"""

RUN_EXIT_CODES = f"""\
exit status:
  {OK}      stopped cleanly after Ctrl-C or SIGTERM
  {USAGE}      bad options
  {NOT_READY}      not ready within --timeout (the service is stopped)
  {START_FAILED}      the service could not be started, or exited before it was ready
  {DIED}      the service exited on its own while running (without --then)
  {UNCLEAN_STOP}      the service ended with an unexpected status when stopped
         (without --then)
  128+N  interrupted by signal N before the service was ready (130 for Ctrl-C)
  with --then, once the service is ready: the exit status of the --then command
  --json reports a process ended by signal N as 128+N, as the shell does
"""

WAIT_EXIT_CODES = f"""\
exit status:
  {OK}      ready
  {USAGE}      bad options
  {NOT_READY}      not ready within --timeout
  128+N  interrupted by signal N (130 for Ctrl-C)
  with -- COMMAND, once ready: the exit status of COMMAND (128+N if signal N
         ended it; {CANNOT_EXECUTE} if it cannot be executed, {NOT_FOUND} if it is not found)
"""


class _Formatter(argparse.HelpFormatter):
    """Prose is wrapped to the terminal; a text with line breaks (a table) is kept as laid out."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        text = f"{self.prog}: error: {message} (see {self.prog} --help)"
        self.exit(USAGE, wrap(text, terminal_columns(sys.stderr)) + "\n")


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
            " service, so it cannot watch its output or notifications"
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
    group = parser.add_argument_group("readiness (all given must hold; {port} becomes a free port)")
    group.add_argument(
        "--tcp",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=(
            "ready once a TCP connection to HOST:PORT is accepted ([::1]:PORT for IPv6;"
            " a tcp:// prefix is allowed)"
        ),
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


def _add_reporting(parser: argparse.ArgumentParser, then: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    group.add_argument(
        "--json",
        action="store_true",
        help=(
            "print one JSON object with the result and its timings on stdout at the end;"
            f" stdout carries nothing else ({then}'s stdout goes to stderr)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser for ``mirakuru run`` and ``mirakuru wait``."""
    parser = _Parser(
        prog="mirakuru",
        description="Start a service, wait until it is ready, and stop its whole process tree.",
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
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
        epilog=RUN_EXIT_CODES,
        formatter_class=_Formatter,
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
    _add_reporting(run, "the --then command")
    run.set_defaults(subparser=run)
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND", help="the service to start"
    )
    wait = commands.add_parser(
        "wait",
        help="wait until a service started by something else is ready (then run COMMAND)",
        description=(
            "Wait until every readiness option holds. Without COMMAND, exit 0 when ready;"
            " with -- COMMAND, run it once ready and exit with its status."
        ),
        usage="mirakuru wait [options] [-- COMMAND [ARG...]]",
        epilog=WAIT_EXIT_CODES,
        formatter_class=_Formatter,
    )
    _add_readiness(wait, own_process=False)
    _add_reporting(wait, "COMMAND")
    wait.set_defaults(subparser=wait)
    wait.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="run once ready (no shell); its exit status is ours",
    )
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
    command = getattr(args, "command", None)  # the stack commands take none
    if command is not None and command[:1] == ["--"]:
        args.command = command[1:]
    if args.action == "run" and not args.command:
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


_TCP_SCHEME = "tcp://"
#: A host name or an IPv4 address; an IPv6 address (with an optional %zone) in brackets.
_HOST = re.compile(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\]")


def _tcp(address: str) -> Probe:
    # dockerize spells it tcp://HOST:PORT: that scheme is understood, any other is a mistake
    # (it would otherwise be taken for part of the host name and waited for in vain).
    rest = address[len(_TCP_SCHEME) :] if address.lower().startswith(_TCP_SCHEME) else address
    host, sep, port = rest.rpartition(":")
    if "://" in rest or "/" in rest:
        raise ValueError(f"expects HOST:PORT (optionally tcp://HOST:PORT), got {address!r}")
    if not sep or not host or not port:
        raise ValueError(f"expects HOST:PORT, got {address!r}: the port is missing")
    if not _HOST.fullmatch(host):
        bracket = " (write an IPv6 address in brackets: [::1]:PORT)" if ":" in host else ""
        raise ValueError(f"expects HOST:PORT, got {address!r}: bad host {host!r}{bracket}")
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expects HOST:PORT, got {address!r}: the port must be 1 to 65535")
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
