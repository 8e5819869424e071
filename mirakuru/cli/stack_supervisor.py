"""``mirakuru up --detach``: a small supervisor process owns the services.

The command starts ``python -m mirakuru.cli.stack_supervisor`` in its own session and reads
what it reports through a pipe (each state change, then "ready" or "failed"), so it returns
once the stack is ready, or once it failed and nothing is left running. The supervisor then
keeps the services, records their state and output in the stack's private state directory
and stops them, dependents first, on SIGTERM (``mirakuru down``). Its executors are guarded
by the watchdog like any others: if the supervisor is killed, its services are killed too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

from mirakuru._stack_engine import StackFailed, StackRun
from mirakuru.adapter.guard.stackstate import StackState
from mirakuru.adapter.stackfile import load_stack
from mirakuru.cli.args import DIED, NOT_READY, OK, SIGNALLED, START_FAILED
from mirakuru.cli.commands import Interrupted, SignalGuard
from mirakuru.cli.stack_commands import failure_status
from mirakuru.cli.stack_keeper import Keeper
from mirakuru.cli.stack_view import Recorder, StackConsole, use_colour
from mirakuru.core.stack import StackSpec, Status

__all__ = ["detach", "main", "report_lines"]

#: Added to the services' own timeouts, to bound the wait for a supervisor that hangs.
_SLACK = 30.0


def _budget(spec: StackSpec, names: Sequence[str]) -> float:
    order = spec.order(names or None)
    return sum(spec.service(n).timeout + spec.service(n).stop_timeout for n in order) + _SLACK


def detach(args: argparse.Namespace, spec: StackSpec) -> int:
    """Start the supervisor and report its progress until the stack is ready or failed."""
    order = spec.order(args.names or None)
    console = StackConsole(order, quiet=args.quiet, colour=use_colour(sys.stderr, args.no_color))
    state = StackState(spec.source)
    if state.running():
        owner = (state.read() or {}).get("pid", "?")
        console.say(f"already running (pid {owner}): nothing started")
        return OK
    reading, writing = os.pipe()
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    log = os.open(state.path / "supervisor.log", flags, 0o600)
    command = [sys.executable, "-m", "mirakuru.cli.stack_supervisor"]
    command += ["--report-fd", str(writing), "--file", spec.source, *args.names]
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(writing,),
            start_new_session=True,
        )
    finally:
        os.close(writing)
        os.close(log)
    with SignalGuard().installed() as guard:
        try:
            return _follow(reading, child, console, _budget(spec, args.names))
        except Interrupted as interrupt:
            guard.shield()
            console.say("interrupted: stopping the services")
            child.send_signal(signal.SIGTERM)
            child.wait()
            return SIGNALLED + interrupt.signum
        finally:
            os.close(reading)


def report_lines(fd: int, deadline: float) -> Iterator[str | None]:
    """The reported lines as they come; None when ``deadline`` passes first."""
    pending = b""
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            yield None
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk


def _follow(fd: int, child: subprocess.Popen[bytes], console: StackConsole, budget: float) -> int:
    for line in report_lines(fd, time.monotonic() + budget):
        if line is None:
            console.say(f"no answer from the supervisor within {budget:g} s: stopping it")
            child.send_signal(signal.SIGTERM)
            child.wait()
            return NOT_READY
        event: dict[str, Any] = json.loads(line)
        kind = event["event"]
        if kind == "change":
            console.change(event["service"], Status(event["status"]), event["detail"])
        elif kind == "already":
            console.say(f"already running (pid {event['pid']}): nothing started")
            child.wait()
            return OK
        elif kind == "ready":
            ports = ", ".join(f"{name} {port}" for name, port in event["ports"].items())
            console.say(
                f"ready (supervisor pid {child.pid})" + (f", ports: {ports}" if ports else "")
            )
            # The supervisor lives on in its own session; it is no child to wait for.
            child.returncode = OK
            return OK
        else:
            tail = event.get("tail", [])
            console.say(event["message"] + ("; last output:" if tail else ""), tail)
            child.wait()  # it stopped every service before saying so; it exits next
            return int(event["code"])
    code = child.wait()
    console.say(f"the supervisor exited with status {code} before the stack was ready")
    return START_FAILED


# -- the supervisor process --------------------------------------------------------------------


class _Reporter:
    """Events for the waiting ``up --detach``, one JSON line each; a gone reader is fine."""

    def __init__(self, fd: int) -> None:
        self._stream: IO[str] | None = os.fdopen(fd, "w", buffering=1)

    def send(self, **event: Any) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(json.dumps(event) + "\n")
        except (OSError, ValueError):
            self._stream = None  # up --detach is gone: nobody to tell any more

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
            self._stream = None


def main(argv: Sequence[str] | None = None) -> int:
    """The supervisor: start the stack, report, keep it until SIGTERM, stop it.

    With ``--keep`` it starts nothing itself: test runs ask it for services through its
    control socket (:mod:`~mirakuru.cli.stack_keeper`), and it ends services nobody used
    for ``--idle`` seconds, then itself once it keeps nothing.
    """
    parser = argparse.ArgumentParser(prog="mirakuru-stack-supervisor")
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--idle", type=float, default=None)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    reporter = _Reporter(args.report_fd)
    if args.keep:
        # The declaration comes with each request: the file may change between test runs.
        spec = StackSpec(args.file, os.path.dirname(args.file) or "/", ())
    else:
        spec = load_stack(args.file)
    state = StackState(spec.source)
    if not state.claim():
        reporter.send(event="already", pid=(state.read() or {}).get("pid", "?"))
        return OK
    names = () if args.keep else spec.order(args.names or None)
    recorder = Recorder(state, "kept" if args.keep else "detached", names)
    keeper: Keeper | None = None

    def change(name: str, status: Status, detail: str) -> None:
        recorder.change(name, status, detail)
        reporter.send(event="change", service=name, status=status.value, detail=detail)
        if keeper is not None:
            keeper.changed(name, status, detail)
        print(f"{time.strftime('%H:%M:%S')} {name}: {status.value} {detail}", flush=True)

    try:
        run = StackRun(spec, args.names, on_output=recorder.output, on_change=change)
        recorder.run = run
        keeper = Keeper(state, run, recorder, idle=args.idle, keep=args.keep)
        recorder.write()
        return _supervise(run, reporter, keeper)
    finally:
        reporter.close()
        if keeper is not None:
            keeper.close()
        recorder.close()
        state.release()


def _supervise(run: StackRun, reporter: _Reporter, keeper: Keeper) -> int:
    with SignalGuard().installed() as guard:
        try:
            if not keeper.keep:
                run.start()
            keeper.listen()
        except StackFailed as failure:
            tail = list(getattr(failure.error, "output_tail", ()) or ())
            code = failure_status(failure)
            reporter.send(event="failed", code=code, message=str(failure), tail=tail)
            return code
        except Interrupted as interrupt:
            message = "interrupted before every service was ready; stopped"
            reporter.send(event="failed", code=SIGNALLED + interrupt.signum, message=message)
            return SIGNALLED + interrupt.signum
        reporter.send(event="ready", ports=run.ports)
        reporter.close()
        code = OK
        try:
            keeper.serve()
            if run.failure is not None and not keeper.keep:
                print(f"stopping: {run.failure}", flush=True)
                code = DIED
        except Interrupted:
            print("stopping on request", flush=True)
        guard.shield()
        run.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
