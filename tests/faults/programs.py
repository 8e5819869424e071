"""Misbehaving child programs for the fault-injection tests, each printing ``ready`` when set.

Every program prints one line ``ready <pid> ...`` once its whole tree exists, so a test
can wait for that line (bounded by the child's own exit) instead of sleeping.
"""

from __future__ import annotations

import os
import sys

import mirakuru

__all__ = [
    "REPO",
    "changes_group",
    "double_forking_daemon",
    "driver",
    "exits_143_on_term",
    "forks_on_go",
    "group_outlives_leader",
    "leaves_cgroup_on_go",
    "stubborn_tree",
]

#: The directory holding the ``mirakuru`` package, for driver scripts run as children.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(mirakuru.__file__)))

_PRELUDE = "import os, signal, sys, time\n"


def _python(source: str) -> list[str]:
    return [sys.executable, "-c", _PRELUDE + source]


def stubborn_tree(children: int = 5, grandchildren: int = 9) -> list[str]:
    """A leader, ``children`` children and ``grandchildren`` each, all ignoring SIGTERM."""
    return _python(
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "r, w = os.pipe()\n"
        f"for _ in range({children}):\n"
        "    if os.fork() == 0:\n"
        f"        for _ in range({grandchildren}):\n"
        "            if os.fork() == 0:\n"
        "                os.close(r); os.write(w, b'x'); signal.pause()\n"
        "        os.close(r); os.write(w, b'x'); signal.pause()\n"
        "os.close(w)\n"
        "got = 0\n"
        f"while got < {children * (grandchildren + 1)}:\n"
        "    got += len(os.read(r, 64))\n"
        "print('ready', os.getpid(), flush=True)\n"
        "signal.pause()\n"
    )


def double_forking_daemon(leader_stays: bool) -> list[str]:
    """A launcher whose grandchild calls setsid (a daemon); the launcher stays or exits 0."""
    return _python(
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode()); signal.pause()\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "daemon = os.read(r, 64).decode()\n"
        "print('ready', os.getpid(), daemon, flush=True)\n"
        + ("signal.pause()\n" if leader_stays else "sys.exit(0)\n")
    )


def changes_group() -> list[str]:
    """A leader whose child moves to a process group of its own (killpg misses it)."""
    return _python(
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setpgid(0, 0)\n"
        "    os.write(w, str(os.getpid()).encode()); signal.pause()\n"
        "child = os.read(r, 64).decode()\n"
        "print('ready', os.getpid(), child, flush=True)\n"
        "signal.pause()\n"
    )


def group_outlives_leader() -> list[str]:
    """A leader that starts two children in its group, then exits 0 (a zombie until reaped)."""
    return _python(
        "r, w = os.pipe()\n"
        "for _ in range(2):\n"
        "    if os.fork() == 0:\n"
        "        os.close(r); os.write(w, b'x'); signal.pause()\n"
        "os.close(w)\n"
        "got = 0\n"
        "while got < 2:\n"
        "    got += len(os.read(r, 64))\n"
        "print('ready', os.getpid(), flush=True)\n"
        "sys.exit(0)\n"
    )


def exits_143_on_term() -> list[str]:
    """Exits with status 143 (128 + SIGTERM) when asked to stop, as the JVM does."""
    return _python(
        "signal.signal(signal.SIGTERM, lambda *_: os._exit(143))\n"
        "print('ready', os.getpid(), flush=True)\n"
        "while True:\n"
        "    signal.pause()\n"
    )


_COLLECT = (
    "pids = []\n"
    "while len(pids) < expected:\n"
    "    pids += os.read(r, 4096).split()\n"
    "print('ready', os.getpid(), *(int(pid) for pid in pids), flush=True)\n"
    "signal.pause()\n"
)


def forks_on_go(
    fifo: str, children: int = 10, daemons: int = 5, *, stubborn: bool = False
) -> list[str]:
    """Forks nothing until a line arrives on ``fifo``; then a tree and wiped-out daemons.

    ``children`` children with two grandchildren each (ignoring SIGTERM if ``stubborn``),
    and ``daemons`` double-forked, ``setsid()``-ed processes that exec ``sleep`` with an
    empty environment (no marker, not in the tree, not in the group: only a cgroup finds
    them). Prints every PID.
    """
    return _python(
        f"open({fifo!r}).read()\n"
        "r, w = os.pipe()\n"
        f"expected = {children * 3 + daemons}\n"
        f"for _ in range({children}):\n"
        "    if os.fork() == 0:\n"
        + ("        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if stubborn else "")
        + "        for _ in range(2):\n"
        "            if os.fork() == 0:\n"
        "                os.write(w, b'%d ' % os.getpid()); signal.pause()\n"
        "        os.write(w, b'%d ' % os.getpid()); signal.pause()\n"
        f"for _ in range({daemons}):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            os.write(w, b'%d ' % os.getpid())\n"
        "            os.execve('/bin/sleep', ['sleep', '60'], {})\n"
        "        os._exit(0)\n"
        "    os.wait()\n" + _COLLECT
    )


def leaves_cgroup_on_go(fifo: str, procs: str) -> list[str]:
    """On a line from ``fifo``, forks a child that writes itself into ``procs`` (leaving its
    cgroup, as only a privileged process can); prints the child's PID."""
    return _python(
        f"open({fifo!r}).read()\n"
        "r, w = os.pipe()\n"
        "expected = 1\n"
        "if os.fork() == 0:\n"
        f"    with open({procs!r}, 'w') as f: f.write(str(os.getpid()))\n"
        "    os.write(w, b'%d ' % os.getpid()); signal.pause()\n" + _COLLECT
    )


def driver(body: str) -> list[str]:
    """A Python process that imports this mirakuru, runs ``body``, and prints what it says."""
    return [sys.executable, "-c", f"import sys\nsys.path.insert(0, {REPO!r})\n{body}"]
