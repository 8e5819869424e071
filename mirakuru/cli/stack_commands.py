"""The stack commands: ``up`` (foreground, ``--then``, ``--detach``), ``status``, ``logs``,
``down``. Each finds the stack file as :meth:`mirakuru.Stack.load` does (``-f`` overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from mirakuru._stack_engine import StackFailed, StackRun
from mirakuru.adapter.guard.stackstate import StackState
from mirakuru.adapter.stackfile import find_stack_file, load_stack
from mirakuru.cli.args import DIED, NOT_READY, OK, SIGNALLED, START_FAILED, UNCLEAN_STOP, USAGE
from mirakuru.cli.commands import Interrupted, SignalGuard, exit_status
from mirakuru.cli.stack_view import Recorder, StackConsole, duration, status_table, use_colour
from mirakuru.core.stack import StackError, StackSpec
from mirakuru.exceptions import TimeoutExpired

__all__ = ["failure_status", "stack_main"]

#: ``status`` says this when the stack is not running.
NOT_RUNNING = 3
#: How ``status`` names the way a stack runs.
_MODES = {
    "detached": "running detached",
    "foreground": "running in the foreground",
    "kept": "kept for test runs",
}
#: How often ``logs --follow`` looks for new output.
_FOLLOW_PAUSE = 0.1


def _say(text: str) -> None:
    sys.stderr.write(f"mirakuru: {text}\n")


def _usage(args: argparse.Namespace, message: str) -> int:
    sys.stderr.write(f"mirakuru {args.action}: error: {message}\n")
    return USAGE


def failure_status(failure: StackFailed) -> int:
    """``up``'s exit status for a service that failed before the stack was ready."""
    return NOT_READY if isinstance(failure.error, TimeoutExpired) else START_FAILED


def _tail(failure: StackFailed) -> list[str]:
    return list(getattr(failure.error, "output_tail", ()) or ())


def stack_main(args: argparse.Namespace) -> int:
    """Run one stack command; returns its exit status."""
    try:
        if args.action == "up":
            return _up(args)
        if getattr(args, "all", False):
            return _every(args)
        path = str(find_stack_file() if args.file is None else _existing(args.file))
        state = StackState(path)
        if args.action == "status":
            return _status(args, state)
        if args.action == "logs":
            return _logs(args, state)
        return down(state, say=_say)
    except (StackError, PermissionError) as error:
        return _usage(args, str(error))


def _up(args: argparse.Namespace) -> int:
    spec = load_stack(args.file)
    unknown = [name for name in args.names if name not in spec.names]
    if unknown:
        return _usage(
            args, f"{spec.source}: no service {unknown[0]!r} (known: {', '.join(spec.names)})"
        )
    if args.detach:
        from mirakuru.cli.stack_supervisor import detach

        return detach(args, spec)
    return _Up(args, spec)()


def _existing(path: str) -> str:
    from pathlib import Path

    chosen = Path(path).absolute()
    if chosen.is_dir():
        return str(find_stack_file(chosen))
    if not chosen.is_file():
        from mirakuru.core.stack import StackFileNotFound

        raise StackFileNotFound(str(chosen), "", "no such file")
    return os.path.normpath(chosen)


# -- up, in the foreground ------------------------------------------------------------------


class _Up:
    """One foreground ``mirakuru up``: start, stream, run --then or wait, stop."""

    def __init__(self, args: argparse.Namespace, spec: StackSpec) -> None:
        self.args = args
        self.spec = spec
        self.console = StackConsole(
            spec.order(args.names or None),
            quiet=args.quiet,
            colour=use_colour(sys.stdout, args.no_color),
        )

    def __call__(self) -> int:
        args, console = self.args, self.console
        state = StackState(self.spec.source)
        if not state.claim():
            owner = (state.read() or {}).get("pid", "?")
            console.say(f"this stack already runs (pid {owner}): see mirakuru status")
            return START_FAILED
        recorder = Recorder(state, "foreground", console.names)

        def output(name: str, stream: str, line: str) -> None:
            console.output(name, stream, line)
            recorder.output(name, stream, line)

        def change(name: str, status: Any, detail: str) -> None:
            console.change(name, status, detail)
            recorder.change(name, status, detail)

        try:
            run = StackRun(self.spec, args.names, on_output=output, on_change=change)
            recorder.run = run
            recorder.write()
            return self._serve(run)
        finally:
            recorder.close()
            state.release()

    def _serve(self, run: StackRun) -> int:
        console, began = self.console, time.monotonic()
        with SignalGuard().installed() as guard:
            try:
                run.start()
            except StackFailed as failure:
                tail = _tail(failure)
                console.say(f"{failure}" + ("; last output:" if tail else ""), tail)
                return failure_status(failure)
            except Interrupted as interrupt:
                console.say("interrupted before every service was ready; stopped")
                return SIGNALLED + interrupt.signum
            ports = ", ".join(f"{name} {port}" for name, port in run.ports.items())
            console.say(
                f"ready after {time.monotonic() - began:.3f} s"
                + (f" (ports: {ports})" if ports else "")
            )
            try:
                code = self._main_phase(run)
            except Interrupted as interrupt:
                console.say("stopping")
                code = SIGNALLED + interrupt.signum if self.args.then else OK
            guard.shield()
            unclean = run.stop()
        if unclean and code == OK:
            for name, status in unclean.items():
                console.say(f"{name} ended with status {exit_status(status)} when stopped")
            code = UNCLEAN_STOP
        console.say(f"stopped in {time.monotonic() - began:.3f} s in all")
        return code

    def _main_phase(self, run: StackRun) -> int:
        if self.args.then:
            return _then(self.args.then, run.environment())
        while not run.wait(0.5):
            pass
        if run.failure is not None:
            tail = _tail(run.failure)
            self.console.say(str(run.failure) + ("; last output:" if tail else ""), tail)
            return DIED
        self.console.say("every service has completed")
        return OK


def _then(command: str, ports: dict[str, str]) -> int:
    """Run ``command`` with the shell and the ports in its environment; its exit status."""
    child = subprocess.Popen(command, shell=True, env={**os.environ, **ports})  # noqa: S602
    try:
        return exit_status(child.wait())
    except Interrupted:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


# -- status, logs, down --------------------------------------------------------------------


def _status(args: argparse.Namespace, state: StackState) -> int:
    document = state.read() if state.running() else None
    if args.json:
        print(json.dumps({"running": document is not None, **(document or {})}))
    elif document is None:
        print(f"not running: {state.stack_file}")
    else:
        _show(state, document)
    return OK if document is not None else NOT_RUNNING


def _show(state: StackState, document: dict[str, Any]) -> None:
    mode = _MODES.get(document["mode"], document["mode"])
    idle = document.get("idle")
    limit = f", ends what is unused for {duration(idle)}" if idle else ""
    print(f"{state.stack_file}: {mode} (pid {document['pid']}{limit})")
    for row in status_table(document):
        print(row)


def _every(args: argparse.Namespace) -> int:
    """``status --all`` and ``down --all``: every stack this user runs, kept ones too."""
    states = StackState.every()
    if args.action == "down":
        codes = [
            down(state, say=lambda text: sys.stderr.write(f"mirakuru: {text}\n"))
            for state in states
        ]
        if not states:
            sys.stderr.write("mirakuru: no stack runs\n")
        return max(codes, default=OK)
    documents = [(state, state.read()) for state in states]
    found = [(state, document) for state, document in documents if document is not None]
    if args.json:
        print(json.dumps({"stacks": [document for _, document in found]}))
    elif not found:
        print("no stack runs")
    for state, document in found if not args.json else ():
        _show(state, document)
    return OK if found else NOT_RUNNING


def _logs(args: argparse.Namespace, state: StackState) -> int:
    path = state.log_path(args.name)
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return _usage(args, f"no output of {args.name!r} recorded for {state.stack_file}")
    with handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        if not args.follow:
            return OK
        try:
            with SignalGuard().installed():
                while state.running():
                    chunk = handle.read()
                    if chunk:
                        sys.stdout.write(chunk)
                        sys.stdout.flush()
                    else:
                        time.sleep(_FOLLOW_PAUSE)
                sys.stdout.write(handle.read())
        except Interrupted:
            return OK
    return OK


def down(state: StackState, say: Any, budget: float = 120.0) -> int:
    """Stop the stack's owner (identity-checked) and wait until it and its services are gone."""
    import psutil

    document = state.read()
    if not state.running() or document is None:
        say(f"not running: {state.stack_file}")
        return OK
    pid, started = document["pid"], document.get("pid_started")
    owner = None
    try:
        owner = psutil.Process(pid)
        if started is None or abs(owner.create_time() - started) > 0.01:
            say(f"pid {pid} is no longer the stack's owner: nothing signalled")
            return START_FAILED
        owner.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        pass
    deadline = time.monotonic() + budget
    while state.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    if state.running():
        # Its services die with it: the watchdog kills what a dead owner registered.
        say(f"the owner (pid {pid}) did not stop within {budget:g} s: killing it")
        if owner is not None:
            with _quietly():
                owner.kill()
    left = _survivors(document)
    until = time.monotonic() + 10
    while left and time.monotonic() < until:
        time.sleep(0.02)
        left = _survivors(document)
    if left:
        say(f"still running: {', '.join(left)}")
        return UNCLEAN_STOP
    say(f"stopped {', '.join(document.get('services') or document.get('names', ()))}")
    return OK


def _survivors(document: dict[str, Any]) -> list[str]:
    import psutil

    left = []
    for name, record in document.get("services", {}).items():
        pid, started = record.get("pid"), record.get("pid_started")
        if pid is None or started is None:
            continue
        with _quietly():
            process = psutil.Process(pid)
            if abs(process.create_time() - started) < 0.01 and process.status() != "zombie":
                left.append(f"{name} (pid {pid})")
    return left


def _quietly() -> Any:
    import contextlib

    import psutil

    return contextlib.suppress(psutil.Error)
