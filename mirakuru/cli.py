"""The ``mirakuru`` command: start a service and wait until it is ready, or wait for one.

``mirakuru run [readiness] -- COMMAND...`` starts COMMAND, waits until every readiness
option holds, then keeps it in the foreground until Ctrl-C or SIGTERM (or runs ``--then``)
and stops its whole process tree. ``mirakuru wait [readiness]`` waits for a service that
something else started.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, NoReturn, Self

from mirakuru import __version__
from mirakuru.adapter.clock import monotonic
from mirakuru.adapter.ports import PORT_PLACEHOLDER, fill_port, free_port
from mirakuru.base import Executor, SimpleExecutor
from mirakuru.core import probes
from mirakuru.core.probes import Probe
from mirakuru.exceptions import (
    ExecutorError,
    OutputEnded,
    ProcessFinishedWithError,
    TimeoutExpired,
)
from mirakuru.probes import wait_for_probe

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["main"]

# Exit statuses (documented in --help and the README).
OK = 0
USAGE = 2
NOT_READY = 3
START_FAILED = 4
DIED = 5
UNCLEAN_STOP = 6
#: Added to a signal number when we were interrupted by that signal.
SIGNALLED = 128

EXIT_CODES = f"""\
exit status:
  {OK}     ready (wait); stopped cleanly after Ctrl-C or SIGTERM (run)
  {USAGE}     bad options
  {NOT_READY}     not ready within --timeout (the service is stopped)
  {START_FAILED}     the service could not be started or exited before it was ready
  {DIED}     the service exited on its own while running (run without --then)
  {UNCLEAN_STOP}     the service exited with an unexpected code when stopped (run without --then)
  128+N interrupted by signal N before the service was ready (130 for Ctrl-C)
  with --then, once the service is ready: the exit status of the --then command
"""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; carries the signal number for the exit status."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# -- command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see --help)\n")


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
        help="print one JSON object with the result and its timings on stdout at the end",
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
    commands = parser.add_subparsers(dest="action", required=True, metavar="{run,wait}")
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
    return parser


def _probe(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Probe | None:
    """The readiness options as one probe (all must hold), or None when there are none."""
    found: list[Probe] = []
    try:
        for address in args.tcp:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                parser.error(f"--tcp expects HOST:PORT, got {address!r}")
            found.append(probes.tcp(host, int(port)))
        found.extend(probes.http(url, method=args.method, status=args.status) for url in args.http)
        found.extend(probes.unix_socket(path) for path in args.unix_socket)
        found.extend(probes.pid_file(path) for path in args.pid_file)
        patterns = getattr(args, "output", [])
        found.extend(probes.banner(pattern, streams=("stdout", "stderr")) for pattern in patterns)
        if getattr(args, "notify", False):
            found.append(probes.sd_notify())
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return probes.all_of(*found) if found else None


def _fill_port(args: argparse.Namespace) -> int | None:
    """Pick a free port if ``{port}`` appears anywhere, and substitute it everywhere."""
    fields = ("tcp", "http", "unix_socket", "pid_file", "output", "command")
    texts = [text for name in fields for text in getattr(args, name, [])]
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


# -- reporting ------------------------------------------------------------------------------


class Console:
    """Our messages on stderr: plain lines, or a live status line on a terminal."""

    def __init__(self, stream: IO[str], *, quiet: bool, live: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._live = live and not quiet
        self._lock = threading.Lock()
        self._status = ""

    def info(self, message: str) -> None:
        """One line of progress, unless quiet."""
        if not self._quiet:
            self._write(f"mirakuru: {message}\n")

    def error(self, message: str, details: Sequence[str] = ()) -> None:
        """An error with optional indented details; shown even when quiet."""
        text = "".join(f"    {line}\n" for line in details)
        self._write(f"mirakuru: {message}\n{text}")

    def passthrough(self, text: str) -> None:
        """A line of the service's own output."""
        self._write(text if text.endswith("\n") else text + "\n")

    def status(self, text: str) -> None:
        """Replace the live status line (terminals only)."""
        if not self._live:
            return
        with self._lock:
            self._status = text
            self._stream.write(f"\r\x1b[K{text}")
            self._stream.flush()

    def clear_status(self) -> None:
        """Remove the live status line."""
        if not self._live:
            return
        with self._lock:
            self._status = ""
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def _write(self, text: str) -> None:
        with self._lock:
            if self._status:
                self._stream.write("\r\x1b[K")
            self._stream.write(text)
            if self._status:
                self._stream.write(self._status)
            self._stream.flush()


@contextmanager
def _ticker(console: Console, render: Callable[[], str], period: float = 0.1) -> Iterator[None]:
    """Refresh the live status line every ``period`` seconds while the block runs."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(period):
            console.status(render())

    console.status(render())
    thread = threading.Thread(target=tick, name="mirakuru-status", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1.0)
        console.clear_status()


class SignalGuard:
    """Turns the first SIGINT or SIGTERM into :class:`Interrupted`; later ones are only noted.

    Once shielded (by the first signal, or before clean-up), signals no longer interrupt,
    so stopping the process tree, which is bounded, always runs to the end.
    """

    def __init__(self) -> None:
        self.shielded = False
        self.received: list[int] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if not self.shielded:
            self.shielded = True
            raise Interrupted(signum)

    def shield(self) -> None:
        """From now on, signals are noted but interrupt nothing."""
        self.shielded = True

    @contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        """Handle SIGINT and SIGTERM this way for the duration of the block."""
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._handle) for sig in sigs}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _history(executor: SimpleExecutor, origin: float) -> list[dict[str, Any]]:
    return [
        {
            "at": round(change.at - origin, 6),
            "trigger": change.trigger.value,
            "from": change.source.value,
            "to": change.dest.value,
            "detail": getattr(change, "detail", None),
        }
        for change in executor.history
    ]


def _exit_status(returncode: int) -> int:
    """A child's return code as a shell would report it (128+N when killed by signal N)."""
    return SIGNALLED - returncode if returncode < 0 else returncode


# -- wait ---------------------------------------------------------------------------------------


def _wait(args: argparse.Namespace, probe: Probe, console: Console) -> tuple[int, dict[str, Any]]:
    began = monotonic()
    attempts = 0

    def count(attempt_number: int) -> None:
        nonlocal attempts
        attempts = attempt_number

    def render() -> str:
        return f"mirakuru: waiting {monotonic() - began:5.1f} s, attempt {attempts}: {probe!r}"

    result: dict[str, Any] = {"probe": repr(probe), "attempts": 0}
    try:
        with SignalGuard().installed(), _ticker(console, render):
            outcome = wait_for_probe(probe, args.timeout, on_attempt=count)
    except Interrupted as interrupt:
        console.error(f"interrupted after {monotonic() - began:.3f} s")
        result.update(result="interrupted", attempts=attempts, duration=monotonic() - began)
        return SIGNALLED + interrupt.signum, result
    duration = monotonic() - began
    result.update(attempts=attempts, duration=round(duration, 6))
    if outcome.ready:
        console.info(f"ready after {duration:.3f} s ({attempts} attempts): {probe!r}")
        result["result"] = "ready"
        return OK, result
    console.error(f"not ready after {args.timeout} s ({attempts} attempts): {probe!r}")
    result["result"] = "timeout"
    return NOT_READY, result


# -- run ----------------------------------------------------------------------------------------


def _copy_output(stream: IO[str] | None, console: Console) -> threading.Thread | None:
    """Copy a captured stream of the service to our stderr, line by line, in a thread."""
    if stream is None:
        return None

    def pump() -> None:
        try:
            for line in stream:
                console.passthrough(line)
        except (OSError, ValueError):
            return  # the spool was released: nothing more to copy

    thread = threading.Thread(target=pump, name="mirakuru-echo", daemon=True)
    thread.start()
    return thread


def _run_then(command: str, grace: float) -> int:
    """Run ``command`` with the shell in our process group; on interruption, end it too."""
    child = subprocess.Popen(command, shell=True)  # noqa: S602 - a shell command is the point
    try:
        return _exit_status(child.wait())
    except Interrupted:
        # The guard is shielded now: this clean-up cannot be interrupted in turn.
        child.terminate()
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


class _Run:
    """One ``mirakuru run``: start, wait, serve or run --then, stop; collects the result."""

    def __init__(
        self, args: argparse.Namespace, probe: Probe | None, port: int | None, console: Console
    ) -> None:
        self.args = args
        self.probe = probe
        self.console = console
        self.began = monotonic()
        self.echoes: list[threading.Thread] = []
        self.executor = _make_executor(args, probe, self._follow_output)
        self.result: dict[str, Any] = {
            "service": shlex.join(args.command),
            "probe": repr(probe) if probe is not None else None,
            "port": port,
            "ready_after": None,
            "then": None,
        }

    def _follow_output(self) -> None:
        if self.args.hide_output or self.echoes:
            return
        for stream in (self.executor.output(), self.executor.err_output()):
            thread = _copy_output(stream, self.console)
            if thread is not None:
                self.echoes.append(thread)

    def _render(self) -> str:
        elapsed = monotonic() - self.began
        attempts = getattr(self.executor, "attempts", 0)
        return (
            f"mirakuru: {self.executor.state.value} {elapsed:5.1f} s,"
            f" attempt {attempts}: {self.probe!r}"
        )

    def _finish(self, code: int, outcome: str) -> tuple[int, dict[str, Any]]:
        for thread in self.echoes:
            thread.join(1.0)
        executor = self.executor
        self.result.update(
            result=outcome,
            duration=round(monotonic() - self.began, 6),
            attempts=getattr(executor, "attempts", None),
            history=_history(executor, self.began),
            output_tail=list(executor.output_tail()),
        )
        return code, self.result

    def __call__(self) -> tuple[int, dict[str, Any]]:
        """Run the whole thing; returns the exit status and the result for --json."""
        with SignalGuard().installed() as guard:
            try:
                failed = self._start()
                if failed is not None:
                    return failed
                code, outcome = self._main_phase()
                guard.shield()
            except Interrupted as interrupt:
                code, outcome = self._interrupted(interrupt.signum)
            return self._stop(code, outcome)

    def _interrupted(self, signum: int) -> tuple[int, str]:
        """The status for a signal: the normal end of serving, else 128 + its number."""
        elapsed = monotonic() - self.began
        if self.result["ready_after"] is None:
            self.console.error(f"interrupted before ready, after {elapsed:.3f} s")
            return SIGNALLED + signum, "interrupted"
        self.console.info("stopping")
        if self.args.then:
            return SIGNALLED + signum, "interrupted"
        return OK, "stopped"

    def _start(self) -> tuple[int, dict[str, Any]] | None:
        console, executor = self.console, self.executor
        console.info(f"starting {self.result['service']}")
        try:
            with _ticker(console, self._render):
                executor.start()
        except OutputEnded as error:
            console.error(
                f"the output ended (exit code {error.exit_code}) without matching {self.probe!r}",
                error.output_tail,
            )
            return self._finish(START_FAILED, "exited")
        except TimeoutExpired as error:
            console.error(
                f"not ready after {self.args.timeout} s: {self.probe!r}", error.output_tail
            )
            return self._finish(NOT_READY, "timeout")
        except ExecutorError as error:
            console.error(f"could not start: {error}")
            return self._finish(START_FAILED, "exited")
        self._follow_output()
        ready_after = monotonic() - self.began
        self.result["ready_after"] = round(ready_after, 6)
        port = self.result["port"]
        console.info(f"ready after {ready_after:.3f} s" + (f" on port {port}" if port else ""))
        return None

    def _main_phase(self) -> tuple[int, str]:
        args = self.args
        if args.then:
            then_began = monotonic()
            status = _run_then(args.then, args.stop_timeout)
            self.result["then"] = {
                "command": args.then,
                "exit_code": status,
                "duration": round(monotonic() - then_began, 6),
            }
            return status, "then"
        process = self.executor.process
        returncode = process.wait() if process is not None else None
        self.console.error(
            f"the service exited on its own with code {returncode}",
            self.executor.output_tail(),
        )
        return DIED, "died"

    def _stop(self, code: int, outcome: str) -> tuple[int, dict[str, Any]]:
        executor = self.executor
        process = executor.process
        self.result["service_returncode"] = None
        if outcome == "then" and process is not None and process.poll() is not None:
            self.console.error(
                f"warning: the service exited during --then (code {process.returncode})"
            )
        try:
            executor.stop()
        except ProcessFinishedWithError as error:
            self.result["service_returncode"] = error.exit_code
            if outcome == "stopped":
                code, outcome = UNCLEAN_STOP, "unclean-stop"
                self.console.error(
                    f"the service exited with code {error.exit_code} when stopped",
                    executor.output_tail(),
                )
        else:
            if process is not None:
                self.result["service_returncode"] = process.returncode
        self.console.info(f"stopped after {monotonic() - self.began:.3f} s")
        return self._finish(code, outcome)


class _Service(Executor):
    """An executor that counts readiness attempts and reports when its process exists."""

    def __init__(self, *args: Any, on_spawn: Callable[[], None], **kwargs: Any) -> None:
        self.attempts = 0
        self._on_spawn: Callable[[], None] | None = on_spawn
        super().__init__(*args, **kwargs)

    def wait_for(self, wait_for: Callable[[], bool]) -> Self:
        # start() calls this right after spawning: the moment output can be followed.
        on_spawn, self._on_spawn = self._on_spawn, None
        if on_spawn is not None:
            on_spawn()
        return super().wait_for(wait_for)

    def after_start_check(self) -> bool:
        self.attempts += 1
        return super().after_start_check()


def _make_executor(
    args: argparse.Namespace, probe: Probe | None, on_spawn: Callable[[], None]
) -> SimpleExecutor:
    options: dict[str, Any] = {
        "timeout": args.timeout,
        "stop_timeout": args.stop_timeout,
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    if probe is None:
        return SimpleExecutor(args.command, **options)
    return _Service(args.command, ready=probe, on_spawn=on_spawn, **options)


# -- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``mirakuru --help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sub: argparse.ArgumentParser = args.subparser
    if args.action == "run":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            sub.error("run needs a COMMAND after --")
    port = _fill_port(args)
    probe = _probe(args, sub)
    console = Console(sys.stderr, quiet=args.quiet or args.json, live=sys.stderr.isatty())
    if args.action == "wait":
        if probe is None:
            sub.error("wait needs at least one readiness option (--tcp, --http, ...)")
        code, result = _wait(args, probe, console)
    else:
        code, result = _Run(args, probe, port, console)()
    if args.json:
        print(json.dumps({"action": args.action, "exit_code": code, **result}, indent=None))
    return code
