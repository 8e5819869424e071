"""``mirakuru up``, ``status``, ``logs`` and ``down`` with real services."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.helpers import PYTHON, needs_watchdog_pins, wait_until
from tests.stack.programs import listener, needs_redis, py, write_stack

LIMIT = 60.0

STACK = f"""
[services.cache]
command = "redis-server --port {{port}} --save '' --appendonly no"
ready = {{ tcp = "127.0.0.1:{{port}}" }}

[services.migrate]
command = {py("-c", "print('migrated', flush=True)")}

[services.web]
command = {py("-u", "-m", "http.server", "{port}", "--bind", "127.0.0.1")}
ready = {{ http = "http://127.0.0.1:{{port}}/" }}
depends_on = {{ cache = "ready", migrate = "completed" }}
"""


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mirakuru ARGS`` in ``folder`` to its end (bounded)."""
    return subprocess.run(
        [PYTHON, "-m", "mirakuru", *args],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``mirakuru ARGS`` in ``folder``, output captured."""
    return subprocess.Popen(
        [PYTHON, "-m", "mirakuru", *args],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status(folder: Path) -> dict[str, object]:
    """``mirakuru status --json``, parsed."""
    document: dict[str, object] = json.loads(cli(folder, "status", "--json").stdout)
    return document


def service_pids(document: dict[str, object]) -> list[int]:
    services = document["services"]
    assert isinstance(services, dict)
    return [record["pid"] for record in services.values() if record["pid"] is not None]


def gone(pids: list[int]) -> bool:
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    # `down` returns once the services are stopped; the supervisor may still be on its way
    # out (a busy machine), so give it a bounded moment.
    return wait_until(lambda: not any(alive(pid) for pid in pids), 10.0)


def ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mirakuru")]


@needs_redis
class TestForeground:
    """``mirakuru up`` in the foreground."""

    def test_then(self, tmp_path: Path) -> None:
        """--then runs once all are ready, with the ports in its environment; its status."""
        write_stack(tmp_path, STACK)
        probe = "echo $MIRAKURU_CACHE_PORT $MIRAKURU_WEB_PORT > ports; exit 7"
        done = cli(tmp_path, "up", "--then", probe)
        assert done.returncode == 7, done.stderr
        cache, web = (int(port) for port in (tmp_path / "ports").read_text().split())
        assert cache != web
        assert "migrate | migrated" in done.stdout
        assert "\x1b[" not in done.stdout + done.stderr  # no terminal: no colours
        lines = ours(done.stderr)
        assert all(len(line) <= 80 for line in lines), lines
        stopping = [line for line in lines if line.endswith(": stopping")]
        assert stopping == [
            "mirakuru: web: stopping",
            "mirakuru: migrate: stopping",
            "mirakuru: cache: stopping",
        ]

    def test_sigterm_stops_everything(self, tmp_path: Path) -> None:
        """SIGTERM after ready: all stopped in reverse order, exit 0; status saw it run."""
        write_stack(tmp_path, STACK)
        process = start(tmp_path, "up")
        try:
            assert wait_until(lambda: status(tmp_path).get("running") is True, LIMIT)
            assert wait_until(lambda: len(service_pids(status(tmp_path))) == 2, LIMIT)
            document = status(tmp_path)
            assert document["mode"] == "foreground"
            pids = service_pids(document)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=LIMIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, stderr
        assert gone(pids)
        assert "cache   | " in stdout
        assert cli(tmp_path, "status").returncode == 3

    def test_service_dies(self, tmp_path: Path) -> None:
        """A service that exits on its own after ready: everything stops, exit 5."""
        counter = tmp_path / "count"
        write_stack(
            tmp_path,
            f"[services.once]\ncommand = {listener(0, str(counter), '1')}\n"
            'ready = { tcp = "127.0.0.1:{port}" }\n',
        )
        done = cli(tmp_path, "up")
        assert done.returncode == 5, done.stderr
        assert "'once' exited on its own with status 1" in done.stderr

    def test_job_fails(self, tmp_path: Path) -> None:
        """A job exiting non-zero before dependents start: exit 4, its name in the error."""
        write_stack(
            tmp_path,
            f"""
[services.job]
command = {py("-c", "import sys; print('boom'); sys.exit(2)")}
[services.app]
command = {listener()}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
depends_on = {{ job = "completed" }}
""",
        )
        done = cli(tmp_path, "up")
        assert done.returncode == 4, done.stderr
        assert "service 'job' exited on its own with status 2" in done.stderr
        assert "app: starting" not in done.stderr
        assert all(len(line) <= 80 for line in done.stderr.splitlines())

    def test_not_ready(self, tmp_path: Path) -> None:
        """A service not ready within its timeout: exit 3, nothing left."""
        write_stack(
            tmp_path,
            f"[services.slow]\ncommand = {listener(30)}\n"
            'ready = { tcp = "127.0.0.1:{port}" }\ntimeout = 0.5\n',
        )
        done = cli(tmp_path, "up", "--then", "true")
        assert done.returncode == 3, done.stderr
        assert "'slow' was not ready within 0.5 s" in " ".join(done.stderr.split())
        assert all(len(line) <= 80 for line in done.stderr.splitlines())

    def test_colours_on_a_terminal(self, tmp_path: Path) -> None:
        """On a terminal each service's name is coloured."""
        import pty

        write_stack(tmp_path, f"[services.job]\ncommand = {py('-c', 'print(42)')}\n")
        leader, follower = pty.openpty()
        try:
            process = subprocess.run(
                [PYTHON, "-m", "mirakuru", "up"],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=follower,
                stderr=subprocess.PIPE,
                timeout=LIMIT,
                check=False,
            )
            os.close(follower)
            follower = -1
            output = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
        assert process.returncode == 0
        assert b"\x1b[36mjob\x1b[0m | 42" in output


@needs_redis
class TestDetached:
    """``up --detach``, then ``status``, ``logs`` and ``down``."""

    def test_lifecycle(self, tmp_path: Path, runtime_dir: Path) -> None:
        """Ready on return; a second up starts nothing; logs; down leaves nothing."""
        write_stack(tmp_path, STACK)
        first = cli(tmp_path, "up", "--detach")
        assert first.returncode == 0, first.stderr
        try:
            document = status(tmp_path)
            assert document["running"] is True
            assert document["mode"] == "detached"
            pids = service_pids(document)
            assert len(pids) == 2
            again = cli(tmp_path, "up", "--detach")
            assert again.returncode == 0
            assert "already running" in again.stderr
            assert service_pids(status(tmp_path)) == pids
            foreground = cli(tmp_path, "up", "--then", "true")
            assert foreground.returncode == 4
            assert "already runs" in foreground.stderr
            assert cli(tmp_path, "logs", "nope").returncode == 2
            table = cli(tmp_path, "status")
            assert table.returncode == 0
            assert table.stdout.splitlines()[1].split()[:2] == ["SERVICE", "STATE"]
            assert all(len(line) <= 80 for line in table.stdout.splitlines()[1:])
            logs = cli(tmp_path, "logs", "migrate")
            assert logs.stdout == "migrated\n"
            follower = start(tmp_path, "logs", "cache", "--follow")
            supervisor = psutil.Process(int(str(document["pid"])))
            folders = list((runtime_dir / "mirakuru" / "stacks").iterdir())
            assert len(folders) == 1
            assert stat.S_IMODE(folders[0].stat().st_mode) == 0o700
        finally:
            down = cli(tmp_path, "down")
        assert down.returncode == 0, down.stderr
        assert gone(pids)
        assert gone([supervisor.pid])
        followed, _ = follower.communicate(timeout=LIMIT)
        assert "Ready to accept connections" in followed
        assert cli(tmp_path, "status").returncode == 3
        assert cli(tmp_path, "down").returncode == 0  # nothing to stop is fine

    def test_failure_leaves_nothing(self, tmp_path: Path) -> None:
        """A stack that cannot start: exit 4 once the supervisor stopped everything."""
        write_stack(
            tmp_path,
            f"""
[services.db]
command = {listener()}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
[services.job]
command = {py("-c", "import sys; sys.exit(1)")}
depends_on = {{ db = "ready" }}
[services.app]
command = {listener()}
depends_on = {{ job = "completed" }}
""",
        )
        done = cli(tmp_path, "up", "--detach")
        assert done.returncode == 4, done.stderr
        assert "'job' exited on its own with status 1" in done.stderr
        assert cli(tmp_path, "status").returncode == 3

    @needs_watchdog_pins
    def test_killed_supervisor_takes_the_services(self, tmp_path: Path) -> None:
        """SIGKILL to the supervisor: the watchdog kills its services."""
        write_stack(
            tmp_path,
            f'[services.a]\ncommand = {listener()}\nready = {{ tcp = "127.0.0.1:{{port}}" }}\n',
        )
        assert cli(tmp_path, "up", "--detach").returncode == 0
        document = status(tmp_path)
        pids = service_pids(document)
        os.kill(int(str(document["pid"])), signal.SIGKILL)
        assert wait_until(lambda: gone(pids), 20)
        assert cli(tmp_path, "status").returncode == 3


class TestValidation:
    """Mistakes in the file: exit 2 and one line naming the file and the key."""

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ('[services.a]\ncomand = "x"\n', "services.a.comand: unknown key"),
            ("[services.a]\ncommand = 3\n", "services.a.command: expected a string or a list"),
            (
                '[services.a]\ncommand = "x"\ndepends_on = ["b"]\n',
                "services.a.depends_on.b: no service",
            ),
            (
                '[services.a]\ncommand = "x"\ndepends_on = {b = "started"}\n'
                '[services.b]\ncommand = "x"\ndepends_on = {a = "started"}\n',
                "dependency cycle: a -> b -> a",
            ),
            (
                '[services.a]\ncommand = "x"\n[services.b]\ncommand = "x"\ndepends_on = ["a"]\n',
                "services.b.depends_on.a: 'a' has no ready check",
            ),
            ('[services.a]\ncommand = "x --port {prot}"\n', "unknown placeholder {prot}"),
            (
                '[services.a]\ncommand = "x"\nready = { http = "ftp://h" }\n',
                "services.a.ready.http",
            ),
            ("[services.a\n", "not valid TOML"),
        ],
    )
    def test_file_errors(self, tmp_path: Path, text: str, words: str) -> None:
        """Each kind of mistake is reported before anything starts."""
        path = write_stack(tmp_path, text)
        done = cli(tmp_path, "up")
        assert done.returncode == 2
        assert done.stderr.startswith(f"mirakuru up: error: {path}")
        assert words in done.stderr

    def test_missing_file(self, tmp_path: Path) -> None:
        """-f naming no file, and no file in any parent: exit 2."""
        done = cli(tmp_path, "up", "-f", "nope.toml")
        assert (done.returncode, "nope.toml: no such file" in done.stderr) == (2, True)
        if not any((parent / "mirakuru.toml").exists() for parent in tmp_path.parents):
            done = cli(tmp_path, "status")
            assert done.returncode == 2
            assert "no mirakuru.toml" in done.stderr

    def test_unknown_service(self, tmp_path: Path) -> None:
        """``up NAME`` for a service the file lacks: exit 2."""
        write_stack(tmp_path, f"[services.a]\ncommand = {py('-V')}\n")
        done = cli(tmp_path, "up", "b")
        assert done.returncode == 2
        assert "no service 'b'" in done.stderr

    def test_unsafe_state_directory(self, tmp_path: Path, runtime_dir: Path) -> None:
        """A state directory open to others is refused, not used."""
        write_stack(tmp_path, f"[services.a]\ncommand = {py('-V')}\n")
        (runtime_dir / "mirakuru").mkdir(mode=0o777)
        (runtime_dir / "mirakuru").chmod(0o777)
        done = cli(tmp_path, "status")
        assert done.returncode == 2
        assert "open to other users" in done.stderr
