"""Scenarios of the fault matrix: a driver process owns real services, then something goes wrong.

Each scenario runs a fresh Python driver that imports mirakuru from ``repo`` (so the same
scenario can measure another checkout), starts services tagged with a marker, reports their
PIDs (and descendants) as JSON, and then misbehaves: it is SIGKILLed, forks, kills its
watchdog... :func:`run` returns what was left: survivors, time taken, the driver's fds, and
whether a bystander carrying a look-alike marker got any signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO

import attrs
import psutil

from tests.faults import programs
from tests.faults.conftest import MARK, alive_with

#: Every wait on a driver or its services is bounded by this.
BOUND = 20.0
#: How long the services of a dead owner may take to vanish.
SETTLE = 5.0


@attrs.frozen
class Outcome:
    """What one scenario left behind."""

    survivors: int
    seconds: float
    fds: int
    bystander_hit: bool
    detail: str = ""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it: no fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_PRELUDE = """
import json, os, signal, sys, time
sys.path.insert(0, REPO)
import psutil
from mirakuru import SimpleExecutor, TCPExecutor
from mirakuru.adapter.guard import watchdog
MARK = {"MIRAKURU_FAULT_MARK": os.environ["FAULT_MARK_VALUE"]}

def tree_of(executors):
    pids = []
    for ex in executors:
        p = psutil.Process(ex.process.pid)
        pids += [p.pid] + [c.pid for c in p.children(recursive=True)]
    return pids

def report(**fields):
    fields["fds"] = len(os.listdir("/proc/self/fd"))
    print(json.dumps(fields), flush=True)
"""


def _services(redis: bool, postgres: str | None) -> str:
    lines = ['services = [SimpleExecutor(["sleep", "60"], envvars=MARK).start()]']
    if redis:
        lines.append(
            "port = int(os.environ['REDIS_PORT'])\n"
            "services.append(TCPExecutor(['redis-server', '--port', str(port), '--save', '',"
            " '--bind', '127.0.0.1'], host='127.0.0.1', port=port, envvars=MARK,"
            " timeout=15).start())"
        )
    if postgres:
        lines.append(
            "port = int(os.environ['PG_PORT']); data = os.environ['PG_DATA']\n"
            "services.append(TCPExecutor(['postgres', '-D', data, '-k', data, '-p', str(port),"
            " '-c', 'listen_addresses=127.0.0.1'], host='127.0.0.1', port=port, envvars=MARK,"
            " timeout=30, popen_kwargs={'user': 'nobody', 'group': 'nogroup',"
            " 'extra_groups': []}).start())\n"
            "time.sleep(0.3)  # postgres forks its auxiliary processes right after listening"
        )
    return "\n".join(lines) + "\n"


def _driver(repo: str, body: str) -> list[str]:
    return [sys.executable, "-c", f"REPO = {repo!r}\n{_PRELUDE}\n{body}"]


def _bystander(token_hint: str) -> tuple[subprocess.Popen[bytes], str]:
    """A process with a marker that looks like ours; it records any catchable signal."""
    record = tempfile.mktemp(prefix="bystander-")  # noqa: S306 - the child creates it
    code = (
        "import signal, sys\n"
        "def hit(n, f):\n"
        f"    open({record!r}, 'a').write(str(n))\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):\n"
        "    signal.signal(s, hit)\n"
        "print('ready', flush=True)\n"
        "while True: signal.pause()\n"
    )
    env = {**os.environ, "mirakuru_uuid": f"{token_hint}-lookalike", MARK: "bystander"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert process.stdout is not None
    process.stdout.readline()
    return process, record


def _check_bystander(process: subprocess.Popen[bytes], record: str) -> bool:
    hit = process.poll() is not None or os.path.exists(record)
    process.kill()
    process.wait(BOUND)
    if process.stdout is not None:
        process.stdout.close()
    if os.path.exists(record):
        os.unlink(record)
    return hit


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process)
        except psutil.Error:
            continue
    return left


def _pin(pids: list[int]) -> list[psutil.Process]:
    pinned = []
    for pid in pids:
        try:
            pinned.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return pinned


def _settle(processes: list[psutil.Process], mark: str, timeout: float) -> int:
    """Wait (bounded, woken by psutil's own polling) for them to go; how many are left."""
    deadline = time.monotonic() + timeout
    left = _alive(processes)
    while (left or alive_with(mark)) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.1)
        left = _alive(left)
    return len(left) + len([p for p in alive_with(mark) if p not in left])


def _cleanup(processes: list[psutil.Process], mark: str) -> None:
    """Last resort after a scenario failed: kill what it left (pinned by start time)."""
    for process in [*_alive(processes), *alive_with(mark)]:
        try:
            process.kill()
        except psutil.Error:
            continue


def _launch(
    repo: str, body: str, mark: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    driver = subprocess.Popen(
        _driver(repo, body),
        cwd=tempfile.gettempdir(),  # redis-server writes dump.rdb into its working directory
        env={**os.environ, "FAULT_MARK_VALUE": mark, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: readline() takes no more than the first report (see _drain)
    )
    assert driver.stdout is not None
    line = driver.stdout.readline()
    if not line:
        _, err = driver.communicate(timeout=BOUND)
        raise AssertionError(f"driver failed before reporting: {err[-2000:].decode()}")
    return driver, json.loads(line)


def owner_dies(
    repo: str, mark: str, how: int, *, redis: bool, postgres: str | None, extra: dict[str, str]
) -> Outcome:
    """The owner of three services gets ``how`` (SIGKILL, SIGTERM, SIGINT)."""
    body = (
        _services(redis, postgres)
        + "report(pids=tree_of(services), token=services[0]._uuid)\n"
        + "time.sleep(60)\n"
    )
    driver, fields = _launch(repo, body, mark, extra)
    pinned = _pin(list(fields["pids"]))  # type: ignore[call-overload]
    bystander, record = _bystander(str(fields["token"]))
    try:
        began = time.monotonic()
        driver.send_signal(how)
        # Not communicate(): a surviving service may hold the driver's pipes open.
        driver.wait(BOUND)
        left = _settle(pinned, mark, SETTLE)
        seconds = time.monotonic() - began
    finally:
        _cleanup(pinned, mark)
        if driver.poll() is None:
            driver.kill()
            driver.wait(BOUND)
        for pipe in (driver.stdout, driver.stderr):
            if pipe is not None:
                pipe.close()
        hit = _check_bystander(bystander, record)
    return Outcome(left, seconds, int(fields["fds"]), hit)  # type: ignore[call-overload]


def _drain(pipe: IO[bytes] | None) -> str:
    """What an exited driver wrote to ``pipe``, without waiting for an end of file."""
    if pipe is None:
        return ""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except BlockingIOError:
        pass  # a survivor still holds the other end: the driver's output is all here
    finally:
        pipe.close()
    return b"".join(chunks).decode(errors="replace")


def _stop_scenario(repo: str, mark: str, body: str, extra: dict[str, str] | None = None) -> Outcome:
    """A driver that starts something, reports, stops it, and reports again."""
    driver, fields = _launch(repo, body, mark, extra or {})
    pinned = _pin(list(fields["pids"]))  # type: ignore[call-overload]
    bystander, record = _bystander(str(fields.get("token", "x")))
    try:
        assert driver.stdin is None
        assert driver.stdout is not None
        # Not communicate(): a survivor holding the driver's pipes would pass for a hang.
        try:
            driver.wait(BOUND)
            out, err = _drain(driver.stdout), _drain(driver.stderr)
        except subprocess.TimeoutExpired:
            out, err = "", "driver hung"
        final = json.loads(out.splitlines()[-1]) if out.strip() else {}
        left = _settle(pinned, mark, 1.0)
        detail = f"rc={driver.returncode} {final.get('detail', '')} {err[-300:].strip()}"
    finally:
        _cleanup(pinned, mark)
        if driver.poll() is None:
            driver.kill()
            driver.wait(BOUND)
        hit = _check_bystander(bystander, record)
    seconds = float(final.get("seconds", -1.0))
    return Outcome(left, seconds, int(fields["fds"]), hit, detail)  # type: ignore[call-overload]


def big_tree(repo: str, mark: str) -> Outcome:
    """A 200-process tree ignoring SIGTERM, stopped with a 1 s grace."""
    body = f"""
ex = SimpleExecutor({programs.stubborn_tree(10, 19)!r}, envvars=MARK, stop_timeout=1).start()
ex.output().readline()
report(pids=tree_of([ex]), token=ex._uuid)
began = time.monotonic()
ex.stop()
report(seconds=time.monotonic() - began)
"""
    return _stop_scenario(repo, mark, body)


def stragglers(repo: str, mark: str) -> Outcome:
    """The leader exits on SIGTERM; its 50 descendants ignore it (default grace: timeout)."""
    body = """
code = '''
import os, signal, sys
r, w = os.pipe()
for _ in range(5):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _ in range(9):
            if os.fork() == 0:
                os.close(r); os.write(w, b"x"); signal.pause()
        os.close(r); os.write(w, b"x"); signal.pause()
os.close(w)
got = 0
while got < 50:
    got += len(os.read(r, 64))
print("ready", flush=True)
signal.pause()
'''
ex = SimpleExecutor([sys.executable, "-c", code], envvars=MARK, timeout=30).start()
ex.output().readline()
report(pids=tree_of([ex]), token=ex._uuid)
began = time.monotonic()
try:
    ex.stop()
except Exception as error:
    pass
report(seconds=time.monotonic() - began)
"""
    return _stop_scenario(repo, mark, body)


#: The end of a daemon scenario's driver: report the daemon, stop, report how long it took.
_STOP_DAEMON = """
report(pids=[daemon], token=ex._uuid)
began = time.monotonic()
try:
    ex.stop()
except Exception:
    pass
report(seconds=time.monotonic() - began)
"""


def setsid_daemon(repo: str, mark: str) -> Outcome:
    """A launcher double-forks; the daemon calls setsid() and execs with an empty environment."""
    body = """
code = '''
import os, sys
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        os.execve("/bin/sleep", ["sleep", "60"], {})
    os._exit(0)
os.wait()
print("ready", os.read(r, 64).decode(), flush=True)
'''
ex = SimpleExecutor([sys.executable, "-c", code], envvars=MARK).start()
daemon = int(ex.output().readline().split()[1])
"""
    return _stop_scenario(repo, mark, body + _STOP_DAEMON)


def daemonized_redis(repo: str, mark: str) -> Outcome:
    """``redis-server --daemonize yes``: forks, setsid()s, and its title blanks its environ."""
    body = """
import tempfile
where = tempfile.mkdtemp(prefix="fault-redis-")
pidfile = os.path.join(where, "redis.pid")
ex = SimpleExecutor(
    ["redis-server", "--port", "0", "--unixsocket", os.path.join(where, "redis.sock"),
     "--save", "", "--daemonize", "yes", "--pidfile", pidfile, "--dir", where],
    envvars=MARK,
).start()
deadline = time.monotonic() + 10
while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
    assert time.monotonic() < deadline, "redis wrote no pidfile"
    time.sleep(0.005)  # redis writes it after daemonizing: nothing to wait on but the file
daemon = int(open(pidfile).read())
"""
    return _stop_scenario(repo, mark, body + _STOP_DAEMON)


def fork_then_exit(repo: str, mark: str) -> Outcome:
    """A forked child exits with sys.exit(0); the parent's service survives and stops cleanly."""
    body = """
ex = SimpleExecutor(["sleep", "60"], envvars=MARK).start()
report(pids=tree_of([ex]), token=ex._uuid)
child = os.fork()
if child == 0:
    sys.exit(0)
os.waitpid(child, 0)
alive = ex.running()
began = time.monotonic()
try:
    ex.stop()
    detail = "clean" if alive else "service died"
except Exception as error:
    detail = type(error).__name__
report(seconds=time.monotonic() - began, detail=detail)
"""
    return _stop_scenario(repo, mark, body)


def dead_watchdog(repo: str, mark: str) -> Outcome:
    """SIGPIPE at SIG_DFL, the watchdog killed: the next start() must not kill the owner."""
    body = """
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
first = SimpleExecutor(["sleep", "60"], envvars=MARK).start()
report(pids=tree_of([first]), token=first._uuid)
pid = watchdog.watchdog_pid()
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
began = time.monotonic()
second = SimpleExecutor(["sleep", "60"], envvars=MARK).start()
second.stop()
first.stop()
fresh = watchdog.watchdog_pid()
report(seconds=time.monotonic() - began, detail=f"new_watchdog={fresh not in (None, pid)}")
"""
    return _stop_scenario(repo, mark, body)


def stopped_watchdog(repo: str, mark: str) -> Outcome:
    """A SIGSTOPped watchdog: start()/stop() stay quick, a new watchdog takes over."""
    body = """
first = SimpleExecutor(["sleep", "60"], envvars=MARK).start()
report(pids=tree_of([first]), token=first._uuid)
pid = watchdog.watchdog_pid()
os.kill(pid, signal.SIGSTOP)
began = time.monotonic()
for _ in range(3):
    SimpleExecutor(["sleep", "60"], envvars=MARK).start().stop()
first.stop()
fresh = watchdog.watchdog_pid()
report(seconds=time.monotonic() - began, detail=f"new_watchdog={fresh not in (None, pid)}")
try:
    os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGKILL)
except OSError:
    pass
"""
    return _stop_scenario(repo, mark, body)


def flood(repo: str, mark: str) -> Outcome:
    """``yes`` floods its captured stdout for 5 s, then stop()."""
    body = """
ex = SimpleExecutor(["yes"], envvars=MARK).start()
report(pids=tree_of([ex]), token=ex._uuid)
time.sleep(5)  # the flood itself is the scenario, not a synchronisation
began = time.monotonic()
try:
    ex.stop()
except Exception:
    pass
report(seconds=time.monotonic() - began)
"""
    return _stop_scenario(repo, mark, body)


def postgres_cluster(root: str) -> str | None:
    """A fresh PostgreSQL data directory owned by ``nobody``, or None with postgres missing."""
    if shutil.which("initdb") is None or shutil.which("postgres") is None:
        return None
    data = os.path.join(root, "pgdata")
    os.makedirs(data, mode=0o700)
    shutil.chown(root, "nobody")
    shutil.chown(data, "nobody")
    subprocess.run(
        ["initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        user="nobody",
        group="nogroup",
        extra_groups=[],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        cwd=root,
    )
    return data


def postgres_copy(template: str, root: str) -> str:
    """A copy of a template data directory for one run (a killed postgres leaves its lock)."""
    data = os.path.join(root, "pgdata")
    shutil.copytree(template, data, symlinks=True)
    shutil.chown(root, "nobody")
    for where, dirs, files in os.walk(data):
        for name in [*dirs, *files]:
            shutil.chown(os.path.join(where, name), "nobody", "nogroup")
    shutil.chown(data, "nobody", "nogroup")
    os.chmod(data, 0o700)
    return data


SCENARIOS: dict[str, Callable[[str, str], Outcome]] = {
    "200-process tree": big_tree,
    "stragglers after leader exit": stragglers,
    "setsid env-wiping daemon": setsid_daemon,
    "redis-server --daemonize yes": daemonized_redis,
    "fork-then-exit": fork_then_exit,
    "dead watchdog, SIGPIPE=SIG_DFL": dead_watchdog,
    "SIGSTOPped watchdog": stopped_watchdog,
    "flood with yes for 5 s": flood,
}

OWNER_SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
