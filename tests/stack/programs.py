"""Stack files for the tests, built around real programs: redis-server, http.server, jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import PYTHON

__all__ = ["CLOSABLE", "LISTENER", "needs_redis", "py", "write_stack"]

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")

#: Listens on argv[1] after argv[2] seconds, says so, then serves until stopped. With a counter
#: file as argv[3] (one character per start), it exits 1 half a second after listening as long
#: as the count of starts is <= argv[4].
LISTENER = """
import os, socket, sys, threading, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
starts = None
if len(sys.argv) > 3:
    # Counted before listening: a start that is stopped at once still counts.
    with open(sys.argv[3], 'a') as counter:
        counter.write('x')
    starts = os.path.getsize(sys.argv[3])
time.sleep(delay)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', port))
server.listen()
def serve():
    while True:
        server.accept()[0].close()
threading.Thread(target=serve, daemon=True).start()
print('listening on', port, flush=True)
if starts is not None and starts <= int(sys.argv[4]):
    time.sleep(0.5)
    sys.exit(1)
while True:
    time.sleep(60)
"""


def py(*args: str) -> str:
    """A TOML list: the test interpreter running ``args``."""
    return json.dumps([PYTHON, *args])


def listener(delay: float = 0.0, *extra: str) -> str:
    """A TOML command list for :data:`LISTENER` on ``{port}``."""
    return py("-c", LISTENER, "{port}", str(delay), *extra)


def write_stack(folder: Path, text: str, name: str = "mirakuru.toml") -> Path:
    """Write a stack file; returns its path."""
    path = folder / name
    path.write_text(text)
    return path


#: Listens on argv[1] (counting its starts in the file argv[2]) and serves until stopped; on
#: SIGUSR1 it closes its listening socket but lives on: alive, and no longer ready.
CLOSABLE = """
import signal, socket, sys, threading, time
with open(sys.argv[2], 'a') as counter:
    counter.write('x')
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', int(sys.argv[1])))
server.listen()
def serve():
    while True:
        try:
            server.accept()[0].close()
        except OSError:
            return
threading.Thread(target=serve, daemon=True).start()
signal.signal(signal.SIGUSR1, lambda *_: server.shutdown(socket.SHUT_RDWR) or server.close())
while True:
    time.sleep(60)
"""
