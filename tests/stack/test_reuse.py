"""Reuse between test runs: pytest run twice (or twice at once) on a project with real services.

Each test has its own ``XDG_RUNTIME_DIR`` (see conftest), so its supervisors and state are
its own; the ``kept`` fixture ends whatever the test kept and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mirakuru.adapter.guard.stackstate import StackState
from tests.helpers import PYTHON, wait_until
from tests.stack.programs import CLOSABLE, needs_redis, py, write_stack

LIMIT = 60.0

REDIS = """
[services.cache]
command = "redis-server --port {port} --save '' --appendonly no"
ready = { tcp = "127.0.0.1:{port}" }
"""

CONFTEST = """
from mirakuru.pytest_plugin import stack_fixture

cache = stack_fixture("cache")
"""

#: Records what each run got: PID, port, and how it came by it.
TESTS = """
import os

def test_cache(cache):
    kept = hasattr(cache, "kept_since")
    pid = cache.pid if kept else cache.process.pid
    with open(os.environ["RECORDS"], "a") as f:
        f.write(f"{pid} {cache.port} {getattr(cache, 'verdict', 'own')}\\n")
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mirakuru ARGS`` in ``folder``, to its end (bounded)."""
    return subprocess.run(
        [PYTHON, "-m", "mirakuru", *args],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )


class Project:
    """A pytest project whose runs record the service they were given."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.records = pytester.path / "records"

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    def runs(self) -> list[tuple[int, int, str]]:
        """(pid, port, verdict) of every run so far."""
        if not self.records.exists():
            return []
        found = []
        for line in self.records.read_text().splitlines():
            pid, port, verdict = line.split()
            found.append((int(pid), int(port), verdict))
        return found

    def kept(self) -> list[dict[str, object]]:
        """``mirakuru status --all --json``: every stack still running."""
        done = cli(self.path, "status", "--all", "--json")
        stacks: list[dict[str, object]] = json.loads(done.stdout)["stacks"]
        return stacks


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A redis project with reuse on; afterwards everything kept is ended, and checked gone."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("MIRAKURU_REUSE_IDLE", raising=False)
    monkeypatch.setenv("MIRAKURU_REUSE", "1")
    monkeypatch.setenv("RECORDS", str(pytester.path / "records"))
    write_stack(pytester.path, REDIS)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cache=TESTS)
    made = Project(pytester)
    yield made
    supervisors = [int(str(stack["pid"])) for stack in made.kept()]
    done = cli(made.path, "down", "--all")
    assert done.returncode == 0, done.stderr
    pids = [pid for pid, _, _ in made.runs()] + supervisors
    assert wait_until(lambda: not any(_alive(pid) for pid in pids), LIMIT)
    assert made.kept() == []


def _redis_info(port: int, field: str) -> int:
    """One field of ``INFO stats``, over a connection of its own (which redis counts)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO stats\r\n")
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(4096)
        size = int(data[1 : data.index(b"\r\n")])
        while len(data) < data.index(b"\r\n") + 2 + size:
            data += sock.recv(4096)
    for line in data.decode().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split(":")[1])
    raise AssertionError(f"no {field} in INFO")


@needs_redis
class TestKept:
    """A service started by one run is kept, and the next run attaches to it."""

    def test_attached_by_the_next_run(self, project: Project) -> None:
        """Same PID and port in run 2; its probe connected again; the summary says so."""
        first = project.run()
        first.assert_outcomes(passed=1)
        [(pid, port, verdict)] = project.runs()
        assert verdict == "missing"
        first.stdout.fnmatch_lines(
            [
                "*mirakuru: kept running for the next run*",
                f"*mirakuru.toml: cache (pid {pid}, port {port}, started)",
                f"end them with: mirakuru down -f {project.path / 'mirakuru.toml'}*",
            ]
        )
        assert _alive(pid)
        before = _redis_info(port, "total_connections_received")
        second = project.run()
        second.assert_outcomes(passed=1)
        assert project.runs()[1] == (pid, port, "attach")
        second.stdout.fnmatch_lines([f"*cache (pid {pid}, port {port}, attached)"])
        # Ours, and the readiness probe's in between: it was asked again, not trusted.
        assert _redis_info(port, "total_connections_received") >= before + 2

    def test_status_lists_age_and_last_use(self, project: Project) -> None:
        """``mirakuru status`` shows the kept service with its uptime and last use."""
        project.run().assert_outcomes(passed=1)
        done = cli(project.path, "status")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert "kept for test runs" in lines[0]
        assert "ends what is unused for 3h00m" in lines[0]
        assert lines[1].split() == [
            "SERVICE",
            "STATE",
            "PID",
            "PORT",
            "UPTIME",
            "RESTARTS",
            "LAST",
            "USE",
        ]
        assert lines[2].split()[:2] == ["cache", "ready"]
        assert lines[2].endswith(" ago")

    def test_down_ends_it(self, project: Project) -> None:
        """``mirakuru down`` stops the kept service and its supervisor."""
        project.run().assert_outcomes(passed=1)
        [(pid, _, _)] = project.runs()
        done = cli(project.path, "down")
        assert done.returncode == 0, done.stderr
        assert "stopped cache" in done.stderr
        assert not _alive(pid)
        assert project.kept() == []
        assert cli(project.path, "status").returncode == 3

    def test_xdist_workers_share_one(self, project: Project) -> None:
        """Two workers (every test on each) attach to one instance, started once."""
        result = project.run("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=2)
        runs = project.runs()
        assert len(runs) == 2
        assert len({pid for pid, _, _ in runs}) == 1
        assert sorted(verdict for _, _, verdict in runs) == ["attach", "missing"]
        result.stdout.fnmatch_lines(["*cache (pid *, port *, started)"])


@needs_redis
class TestStartedAfresh:
    """What is kept is not attached to unless it is provably the same and healthy."""

    def test_changed_command(self, project: Project) -> None:
        """Another command: the kept one is stopped, a new one started."""
        project.run().assert_outcomes(passed=1)
        stack = project.path / "mirakuru.toml"
        stack.write_text(
            stack.read_text().replace("--appendonly no", "--appendonly no --databases 4")
        )
        project.run().assert_outcomes(passed=1)
        (old, _, _), (new, _, verdict) = project.runs()
        assert verdict == "changed"
        assert new != old
        assert not _alive(old)
        assert _alive(new)

    def test_killed_between_runs(self, project: Project) -> None:
        """Its process killed: the next run starts a new one."""
        project.run().assert_outcomes(passed=1)
        [(pid, _, _)] = project.runs()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not _alive(pid), LIMIT)
        project.run().assert_outcomes(passed=1)
        (_, _, _), (new, _, verdict) = project.runs()
        assert verdict == "dead"
        assert new != pid
        assert _alive(new)
        # The dead one's output is kept beside the new one's: it may say why it died.
        log = StackState(str(project.path / "mirakuru.toml")).log_path("cache")
        assert f"{pid}:M" in log.with_name("cache.log.1").read_text()
        assert f"{new}:M" in cli(project.path, "logs", "cache").stdout

    def test_unhealthy(self, project: Project) -> None:
        """Alive but no longer passing its probe: cleaned up and started afresh."""
        starts = project.path / "starts"
        write_stack(
            project.path,
            "[services.cache]\n"
            f"command = {py('-c', CLOSABLE, '{port}', str(starts))}\n"
            'ready = { tcp = "127.0.0.1:{port}" }\n',
        )
        project.run().assert_outcomes(passed=1)
        [(pid, _, _)] = project.runs()
        os.kill(pid, signal.SIGUSR1)  # closes its listening socket; the process lives on
        project.run().assert_outcomes(passed=1)
        (_, _, _), (new, _, verdict) = project.runs()
        assert verdict == "unhealthy"
        assert new != pid
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert len(starts.read_text()) == 2


@needs_redis
class TestEnding:
    """A kept service ends by the idle limit; reuse never happens under CI."""

    def test_idle_limit(self, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
        """Unused for longer than MIRAKURU_REUSE_IDLE: the supervisor ends it, then itself."""
        monkeypatch.setenv("MIRAKURU_REUSE_IDLE", "1s")
        project.run().assert_outcomes(passed=1)
        [(pid, _, _)] = project.runs()
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert wait_until(lambda: project.kept() == [], LIMIT)

    def test_ci_ignores_reuse(self, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
        """CI=true: started and stopped as usual, nothing left, said once in the summary."""
        monkeypatch.setenv("CI", "true")
        result = project.run()
        result.assert_outcomes(passed=1)
        [(pid, _, verdict)] = project.runs()
        assert verdict == "own"
        said = [line for line in result.outlines if "reuse is off" in line]
        assert said == [
            "mirakuru: reuse is off because CI is set (CI=true): services were started and"
            " stopped as usual"
        ]
        assert "kept running" not in result.stdout.str()
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert project.kept() == []

    def test_bad_idle_value(self, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
        """A mistyped idle limit stops the run before any test, naming the variable."""
        monkeypatch.setenv("MIRAKURU_REUSE_IDLE", "2 hours")
        result = project.run()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*MIRAKURU_REUSE_IDLE expects a duration*"])
        assert project.runs() == []


@needs_redis
class TestConcurrentRuns:
    """Two test runs that want the same service at once start exactly one."""

    def test_two_runs_at_once(self, project: Project) -> None:
        """Both runs reach the fixture together (a barrier); both get the same process."""
        barrier = project.path / "barrier"
        barrier.mkdir()
        project.pytester.makeconftest(
            CONFTEST
            + f"""
import os, time, pytest

@pytest.fixture(scope="session", autouse=True)
def together():
    # Each run says it is here, then waits for the other: both then ask for cache at once.
    open(os.path.join({str(barrier)!r}, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir({str(barrier)!r})) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
"""
        )
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
        runs = [
            subprocess.Popen(
                command,
                cwd=project.path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=LIMIT)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        records = project.runs()
        assert len(records) == 2
        assert len({pid for pid, _, _ in records}) == 1
        assert sorted(verdict for _, _, verdict in records) == ["attach", "missing"]
        assert len(project.kept()) == 1


def _nobody() -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


NOBODY = _nobody()
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or NOBODY is None or not shutil.which("setpriv"),
    reason="needs root, a nobody user and setpriv to stand for another user",
)


@needs_redis
@as_root
class TestAnotherUser:
    """A kept service of another user is never attached to."""

    def test_state_directory_of_another_user(self, project: Project) -> None:
        """The stack's state directory belongs to nobody: refused, started as usual."""
        assert NOBODY is not None
        state = StackState(str(project.path / "mirakuru.toml"))
        os.chown(state.path, *NOBODY)
        result = project.run()
        result.assert_outcomes(passed=1)
        [(pid, _, verdict)] = project.runs()
        assert verdict == "own"
        result.stdout.fnmatch_lines(
            [f"mirakuru: not kept (*): *belongs to uid {NOBODY[0]}, not to us: refused"]
        )
        assert "kept running" not in result.stdout.str()
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert os.stat(state.path).st_uid == NOBODY[0]
        assert not (state.path / "state.json").exists()

    def test_service_running_as_another_user(self, project: Project) -> None:
        """A service whose process runs as nobody is not kept (in any run): started as usual."""
        assert NOBODY is not None
        uid, gid = NOBODY
        switch = f"setpriv --reuid={uid} --regid={gid} --clear-groups"
        # nobody may not enter the project's directory, where redis looks for its dump.
        write_stack(
            project.path,
            REDIS.replace('command = "', f'command = "{switch} ').replace('no"', 'no --dir /"'),
        )
        for _ in range(2):
            result = project.run()
            result.assert_outcomes(passed=1)
            result.stdout.fnmatch_lines([f"mirakuru: not kept (*): cache runs as uid {uid}, *"])
            assert "kept running" not in result.stdout.str()
        runs = project.runs()
        assert [verdict for _, _, verdict in runs] == ["own", "own"]
        assert wait_until(lambda: not any(_alive(pid) for pid, _, _ in runs), LIMIT)

    def test_answer_naming_another_users_process(self) -> None:
        """The run's own check refuses a recorded process of another user."""
        from mirakuru._reuse import _verify
        from mirakuru.adapter.spawn.identity import start_time

        assert NOBODY is not None
        uid, gid = NOBODY
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "sleep", "60"]
        stranger = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: psutil.Process(stranger.pid).uids().real == uid, LIMIT)
            record = {
                "status": "ready",
                "pid": stranger.pid,
                "started": start_time(stranger.pid),
                "cgroup": None,
            }
            assert (
                _verify({"cache": record})
                == f"cache: pid {stranger.pid} belongs to uid {uid}, not to us"
            )
            assert _verify({"cache": {**record, "started": -1.0}}) == (
                f"cache: pid {stranger.pid} is no longer the process that was started"
            )
        finally:
            stranger.kill()
            stranger.wait(LIMIT)
