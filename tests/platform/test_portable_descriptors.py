"""Portable mode really takes the portable paths: no pidfd, no inotify, ever.

``MIRAKURU_PORTABLE=1`` stands in for macOS and the BSDs on Linux, so a pidfd or an
inotify descriptor opened in that mode means the second CI suite tests the Linux paths
twice. A child interpreter in portable mode starts, waits for and stops one executor of
each kind while a thread watches its descriptor table, and the waits are held open until
the watcher has looked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.faults.programs import REPO

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="reads the descriptor table from /proc"
)

#: Safety bound for the child; never a timing target.
BOUND = 60.0

DRIVER = r"""
import json, os, socket, sys, threading, time
from mirakuru import (
    Executor, OutputExecutor, PidExecutor, SimpleExecutor, TCPExecutor, UnixSocketExecutor,
)
from mirakuru import probes
from mirakuru.adapter.capabilities import capabilities

FORBIDDEN = ("anon_inode:[pidfd]", "anon_inode:inotify")
seen = set()
stop_watching = threading.Event()

def look():
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if link in FORBIDDEN:
            seen.add(link)

def watch():
    while not stop_watching.is_set():
        look()

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()

work = sys.argv[1]
go = os.path.join(work, "go")
# Each service waits for the go file before it becomes ready, so every start waits: the
# driver looks at the descriptor table in the middle of that wait, then lets it go on.
WAIT_GO = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.005)\n"

def service(body):
    return [sys.executable, "-c", WAIT_GO + body, go]

def release_when_starting(executor):
    def run():
        while executor.state.value != "starting":
            time.sleep(0.001)
        for _ in range(20):
            look()
            time.sleep(0.002)
        open(go, "w").close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread

def exercise(executor):
    if os.path.exists(go):
        os.unlink(go)
    helper = release_when_starting(executor)
    executor.start()
    look()
    executor.stop()
    look()
    helper.join(10)

port = socket.socket(); port.bind(("127.0.0.1", 0)); number = port.getsockname()[1]; port.close()
pid_file = os.path.join(work, "svc.pid")
sock_path = os.path.join(work, "svc.sock")
executors = [
    OutputExecutor(service("print('ready', flush=True); time.sleep(60)"), banner="ready"),
    TCPExecutor(
        service(
            "import socket\ns = socket.socket()\n"
            f"s.bind(('127.0.0.1', {number})); s.listen(); time.sleep(60)"
        ),
        host="127.0.0.1",
        port=number,
    ),
    PidExecutor(service(f"open({pid_file!r}, 'w').write('1'); time.sleep(60)"), pid_file),
    UnixSocketExecutor(
        service(
            "import socket\ns = socket.socket(socket.AF_UNIX)\n"
            f"s.bind({sock_path!r}); s.listen(); time.sleep(60)"
        ),
        sock_path,
    ),
    Executor(
        service(
            "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.connect(os.environ['NOTIFY_SOCKET']); s.send(b'READY=1'); time.sleep(60)"
        ),
        ready=probes.sd_notify(),
    ),
]
for executor in executors:
    exercise(executor)
plain = SimpleExecutor([sys.executable, "-c", "import time; time.sleep(60)"]).start()
look()
plain.kill()
look()
stop_watching.set()
watcher.join(10)
print(json.dumps({"portable": capabilities().portable, "seen": sorted(seen)}))
"""


def test_portable_mode_opens_no_pidfd_and_no_inotify(tmp_path: os.PathLike[str]) -> None:
    """Every executor kind starts, waits and stops without a pidfd or inotify descriptor."""
    env = {**os.environ, "MIRAKURU_PORTABLE": "1", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, os.fspath(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["portable"] is True
    assert report["seen"] == []
