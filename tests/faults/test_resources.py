"""What one executor may cost the process that owns it: descriptors, memory, disk.

Each test provokes the real failure (a forked child, a file size limit, a descriptor limit,
lines of many megabytes) and checks the executor degrades instead of leaking or wedging.
Drivers run in a child interpreter whenever the test changes process-wide limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.faults.programs import REPO

#: Safety bound for every driver; never a timing target.
BOUND = 60.0


def run_python(source: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter that imports this checkout; bounded."""
    return subprocess.run(
        [sys.executable, "-c", source, *args],
        env={**os.environ, "PYTHONPATH": REPO, **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


FORKED_STARTS = r"""
import os, sys, time
from mirakuru import PidExecutor

work = sys.argv[1]
STARTS = 25

def inotify_count():
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                count += 1
        except OSError:
            pass
    return count

def cycle(tag):
    path = os.path.join(work, f"{tag}.pid")
    command = [sys.executable, "-c", f"open({path!r}, 'w').write('1'); import time; time.sleep(60)"]
    PidExecutor(command, path).start().stop()
    os.unlink(path)

# The parent has used a directory watch, so its closer thread exists when it forks.
cycle("parent")
child = os.fork()
if child == 0:
    code = 3
    try:
        for number in range(STARTS):
            cycle(f"child-{number}")
        deadline = time.monotonic() + 30  # generous: each close waits out a grace period
        while inotify_count() and time.monotonic() < deadline:
            time.sleep(0.01)  # closing an inotify descriptor waits out an RCU grace period
        code = min(inotify_count(), 100)
    finally:
        os._exit(code)
_, status = os.waitpid(child, 0)
print("leaked", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_forked_child_leaks_no_inotify_descriptor(tmp_path: os.PathLike[str]) -> None:
    """Twenty-five PidExecutor starts in a forked child leave no inotify descriptor open."""
    done = run_python(FORKED_STARTS, os.fspath(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["leaked", "0"], done.stderr


#: Prints 100 bytes, then becomes ready the way its executor waits for (argv[1] says which).
CHATTY_SERVICE = r"""
import os, socket, sys, time
kind, where = sys.argv[1], sys.argv[2]
print("x" * 99, flush=True)
if kind == "output":
    print("ready", flush=True)
elif kind == "tcp":
    server = socket.create_server(("127.0.0.1", int(where)))
elif kind == "http":
    import http.server
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(where)), Handler).serve_forever()
elif kind == "pid":
    with open(where, "w") as pid_file:
        pid_file.write(str(os.getpid()))
elif kind == "unix":
    server = socket.socket(socket.AF_UNIX)
    server.bind(where)
    server.listen()
time.sleep(60)
"""


def _executor_of(kind: str, where: str, limit: object) -> object:
    from mirakuru import (
        HTTPExecutor,
        OutputExecutor,
        PidExecutor,
        SimpleExecutor,
        TCPExecutor,
        UnixSocketExecutor,
    )

    command = [sys.executable, "-c", CHATTY_SERVICE, kind, where]
    if kind == "simple":
        return SimpleExecutor(command, output_limit=limit)  # type: ignore[arg-type]
    if kind == "output":
        return OutputExecutor(command, banner="ready", output_limit=limit)
    if kind == "tcp":
        return TCPExecutor(command, host="127.0.0.1", port=int(where), output_limit=limit)
    if kind == "http":
        return HTTPExecutor(command, url=f"http://127.0.0.1:{where}/", output_limit=limit)
    if kind == "pid":
        return PidExecutor(command, where, output_limit=limit)
    return UnixSocketExecutor(command, where, output_limit=limit)


KINDS = ["output", "tcp", "http", "pid", "unix"]


class TestOutputLimit:
    """``output_limit`` is a whole number of bytes >= 1 (or None), for every executor."""

    @pytest.mark.parametrize(
        ("limit", "error"),
        [
            (100.5, TypeError),
            (1e6, TypeError),
            (float("inf"), TypeError),
            (True, TypeError),
            ("100", TypeError),
            (0, ValueError),
            (-5, ValueError),
        ],
    )
    @pytest.mark.parametrize("kind", ["simple", *KINDS])
    def test_bad_limit_is_refused_before_spawning(
        self, kind: str, limit: object, error: type[Exception], tmp_path: os.PathLike[str]
    ) -> None:
        """A limit that is not a positive int is a typed error naming it; nothing runs."""
        where = "1" if kind in ("tcp", "http") else os.path.join(os.fspath(tmp_path), "x")
        with pytest.raises(error, match="output_limit"):
            _executor_of(kind, where, limit)

    @pytest.mark.parametrize("kind", KINDS)
    def test_every_executor_keeps_only_the_limit(
        self, kind: str, tmp_path: os.PathLike[str]
    ) -> None:
        """Each executor kind takes ``output_limit=`` and keeps that many bytes of output."""
        from mirakuru.ports import free_port

        names = {"pid": "svc.pid", "unix": "svc.sock"}
        where = (
            os.path.join(os.fspath(tmp_path), names[kind]) if kind in names else str(free_port())
        )
        executor = _executor_of(kind, where, 10)
        with executor:  # type: ignore[attr-defined]
            pass
        notes = [change.detail or "" for change in executor.history]  # type: ignore[attr-defined]
        expected = "stdout: 96 bytes" if kind == "output" else "stdout: 90 bytes"
        assert any("output_limit" in note and expected in note for note in notes), notes


HUGE_LINES = r"""
import json, resource, sys
from mirakuru import OutputExecutor
from mirakuru.exceptions import TimeoutExpired

# Twenty lines of 8 MB, then the output ends without the banner.
PRINT = "import sys\nfor n in range(20):\n    sys.stdout.write(str(n % 10) * (8 << 20) + '\\n')\n"
executor = OutputExecutor([sys.executable, "-c", PRINT], banner="never printed", timeout=50)
try:
    executor.start()
except TimeoutExpired as error:
    message = str(error)
    tail = list(error.output_tail)
else:
    raise SystemExit("started")
print(json.dumps({
    "message": len(message.encode()),
    "tail": sum(len(line.encode()) for line in tail),
    "tail_now": sum(len(line.encode()) for line in executor.output_tail()),
    "lines": len(tail),
    "last": tail[-1][-200:],
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
}))
"""


def test_huge_lines_are_cut_in_the_tail_and_the_message() -> None:
    """Twenty 8 MB lines give a tail and a message of kilobytes that say lines were cut."""
    done = run_python(HUGE_LINES)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["lines"] == 20
    assert report["tail"] < 100_000
    assert report["tail_now"] < 100_000
    assert report["message"] < 120_000
    assert "cut" in report["last"]
    # Before the tail was bounded the driver peaked near 700 MB; the pipe data is 160 MB.
    # Alone it peaks near 45 MB; on a loaded machine a line's carry is copied more often
    # before its newline arrives (285 MB seen in CI's suite run), so the bound is loose.
    assert report["peak_mb"] < 400


FILE_SIZE_LIMIT = r"""
import json, resource, sys
from mirakuru import OutputExecutor, SimpleExecutor

# The spool file may not grow past 256 KiB: writing more fails with EFBIG (Python ignores
# SIGXFSZ), as it would on a full disk.
resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, resource.RLIM_INFINITY))
LINES = "import sys\nfor n in range(20000):\n    print(f'{n:09d}' + '.' * 90)\n"
BANNER = LINES + "print('banner', flush=True)\n" + LINES + "import time; time.sleep(60)\n"
report = {}
banner = OutputExecutor([sys.executable, "-c", BANNER], banner="banner", timeout=20)
banner.start()
report["banner_state"] = banner.state.value
banner.stop()
report["banner_stopped"] = banner.state.value
plain = SimpleExecutor([sys.executable, "-c", LINES + "print('last', flush=True)\n"])
plain.start()
plain.process.wait(20)
plain.stop()
report["plain_state"] = plain.state.value
kept = plain.output().read()
report["kept"] = len(kept)
report["kept_head"] = kept[:9]
report["tail"] = plain.output_tail()[-1]
report["notes"] = [change.detail for change in plain.history if change.trigger.value == "notify"]
plain.start()  # a later start works as usual
plain.process.wait(20)
plain.stop()
report["again"] = plain.state.value
print(json.dumps(report))
"""

NO_DESCRIPTORS = r"""
import json, os, resource, sys, tempfile, time
from mirakuru import SimpleExecutor

resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
# Prints 2 MB once told to on its standard input: the spool must then move to a file.
TALK = (
    "import sys\nsys.stdin.readline()\n"
    "for n in range(20000):\n    print(f'{n:09d}' + '.' * 90)\nprint('last', flush=True)\n"
)
executor = SimpleExecutor([sys.executable, "-c", TALK]).start()
from mirakuru.adapter.spawn import identity
pinned = identity.of(executor.process)
if pinned is not None and pinned.group is not None:
    pinned.group.settle(20)  # its cgroup move, made off start(), frees its descriptors
tempfile.gettempdir()  # chosen now, as in any process that made a temporary file before
hoard = []
try:
    while True:
        hoard.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass  # every descriptor is taken: the spool file cannot be opened
try:
    executor.process.stdin.write("go\n")
    executor.process.stdin.flush()
    executor.process.wait(20)
    stream = executor._run.pump.streams["stdout"]
    deadline = time.monotonic() + 20
    while not stream.eof and time.monotonic() < deadline:
        time.sleep(0.01)
    report = {"drained": stream.eof, "kept": len(executor.output().read())}
finally:
    # The interpreter cannot even exit without a free descriptor. (Stopping needs some
    # too, to read /proc: that is teardown's business, not the spool's.)
    for fd in hoard:
        os.close(fd)
executor.stop()
report["state"] = executor.state.value
report["tail"] = executor.output_tail()[-1]
report["notes"] = [c.detail for c in executor.history if c.trigger.value == "notify"]
print(json.dumps(report))
"""


class TestSpoolFailures:
    """A spool that cannot grow (disk full, no descriptors) degrades to the memory it has."""

    def test_file_size_limit(self) -> None:
        """Past RLIMIT_FSIZE the output is drained and scanned, stop() ends, output() reads."""
        done = run_python(FILE_SIZE_LIMIT)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.splitlines()[-1])
        assert report["banner_state"] == "running"
        assert report["banner_stopped"] == "stopped"
        assert report["plain_state"] == "stopped"
        assert report["again"] == "stopped"
        assert report["kept_head"] == "000000000"
        assert 64 << 10 <= report["kept"] <= 256 << 10
        assert report["tail"] == "[stdout] last"
        (note,) = [note for note in report["notes"] if "lost" in note]
        assert "File too large" in note
        assert f"stdout: {20000 * 100 + 5 - report['kept']} bytes lost" in note

    def test_no_free_descriptor(self) -> None:
        """EMFILE when the spool moves to a file: the pipe is drained to its end, the memory
        part is readable at once, and stop() ends the run as usual."""
        done = run_python(NO_DESCRIPTORS)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.splitlines()[-1])
        assert report["drained"] is True
        assert report["state"] == "stopped"
        assert report["kept"] == 64 << 10  # what was in memory when the file failed
        assert report["tail"] == "[stdout] last"
        (note,) = [note for note in report["notes"] if "lost" in note]
        assert "Too many open files" in note
        assert f"stdout: {20000 * 100 + 5 - report['kept']} bytes lost" in note
