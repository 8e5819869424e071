"""``Stack``: finding the file, starting services after their dependencies, stopping them."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import psutil
import pytest

from mirakuru import Stack, StackFailed
from mirakuru.core.stack import Condition, StackFileNotFound, Status, UnknownService, holds
from tests.helpers import wait_until
from tests.stack.programs import listener, needs_redis, py, write_stack

THREE = f"""
[services.cache]
command = "redis-server --port {{port}} --save '' --appendonly no"
ready = {{ tcp = "127.0.0.1:{{port}}" }}

[services.migrate]
command = {py("-c", "print('migrated')")}

[services.web]
command = {py("-m", "http.server", "{port}", "--bind", "127.0.0.1")}
ready = {{ http = "http://127.0.0.1:{{port}}/" }}
depends_on = {{ cache = "ready", migrate = "completed" }}
env = {{ CACHE_PORT = "{{cache.port}}" }}
"""


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def _gone(pids: list[int]) -> bool:
    return not [pid for pid in pids if psutil.pid_exists(pid)]


class Recording:
    """Collects (service, status) changes in order."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, Status]] = []

    def __call__(self, name: str, status: Status, detail: str) -> None:
        self.changes.append((name, status))

    def index(self, name: str, status: Status) -> int:
        return self.changes.index((name, status))


@needs_redis
class TestUp:
    """``stack.up()`` starts a service after what it depends on and stops in reverse."""

    def test_dependencies_first_reverse_stop(self, tmp_path: Path) -> None:
        """web starts once cache is ready and migrate completed; it stops first."""
        stack = Stack.load(write_stack(tmp_path, THREE))
        seen = Recording()
        lines: list[tuple[str, str]] = []
        with stack.up(
            "web", on_change=seen, on_output=lambda n, s, line: lines.append((n, line))
        ) as running:
            assert list(running) == ["cache", "migrate", "web"]
            assert _ping(running["cache"].port) == b"+PONG\r\n"  # type: ignore[attr-defined]
            url = f"http://127.0.0.1:{running['web'].port}/"  # type: ignore[attr-defined]
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
            assert running["web"].envvars["CACHE_PORT"] == str(running["cache"].port)  # type: ignore[attr-defined]
            pids = [running[name].process.pid for name in ("cache", "web")]  # type: ignore[union-attr]
        starting = seen.index("web", Status.STARTING)
        assert seen.index("cache", Status.READY) < starting
        assert seen.index("migrate", Status.COMPLETED) < starting
        stops = [name for name, status in seen.changes if status is Status.STOPPED]
        assert stops == ["web", "migrate", "cache"]
        assert ("migrate", "migrated") in lines
        assert wait_until(lambda: _gone(pids), 5)

    def test_only_what_is_asked(self, tmp_path: Path) -> None:
        """``up("cache")`` starts cache alone; the mapping has only it."""
        stack = Stack.load(write_stack(tmp_path, THREE))
        with stack.up("cache") as running:
            assert list(running) == ["cache"]
            assert running.status("cache") is Status.READY
            assert running.environment() == {"MIRAKURU_CACHE_PORT": str(running.ports["cache"])}

    def test_unknown_name(self, tmp_path: Path) -> None:
        """Asking for a service the file lacks is a typed error, before any start."""
        stack = Stack.load(write_stack(tmp_path, THREE))
        with pytest.raises(UnknownService, match="no service 'nope'"):
            stack.start("nope")


class TestParallel:
    """Services that do not depend on each other start at the same time."""

    def test_independent_services_overlap(self, tmp_path: Path) -> None:
        """Three services needing 1 s each are all spawned before the first is ready."""
        ready = 'ready = { tcp = "127.0.0.1:{port}" }\n'
        text = "".join(f"[services.s{i}]\ncommand = {listener(1.0)}\n{ready}" for i in range(3))
        seen = Recording()
        with Stack.load(write_stack(tmp_path, text)).up(on_change=seen):
            first_ready = min(seen.index(f"s{i}", Status.READY) for i in range(3))
            assert all(seen.index(f"s{i}", Status.STARTING) < first_ready for i in range(3))


class TestFailures:
    """A failing service fails the stack, and nothing is left running."""

    def test_job_exiting_non_zero(self, tmp_path: Path) -> None:
        """A job a service needs ``completed`` that exits 3 fails the whole stack."""
        text = f"""
[services.db]
command = {listener()}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
[services.migrate]
command = {py("-c", "import sys; sys.exit(3)")}
depends_on = {{ db = "ready" }}
[services.app]
command = {listener()}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
depends_on = {{ migrate = "completed" }}
"""
        stack = Stack.load(write_stack(tmp_path, text))
        seen = Recording()
        with pytest.raises(StackFailed) as raised:
            stack.start(on_change=seen)
        assert raised.value.service == "migrate"
        assert "exited on its own with status 3" in str(raised.value)
        assert ("app", Status.STARTING) not in seen.changes
        assert ("db", Status.STOPPED) in seen.changes

    def test_not_ready_in_time(self, tmp_path: Path) -> None:
        """A probe that never passes within ``timeout`` is a failure naming the service."""
        text = f"""
[services.slow]
command = {listener(30)}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
timeout = 0.5
"""
        with pytest.raises(StackFailed, match=r"'slow' was not ready within 0\.5 s"):
            Stack.load(write_stack(tmp_path, text)).start()

    def test_job_that_never_completes(self, tmp_path: Path) -> None:
        """Waiting for ``completed`` is bounded by the job's timeout."""
        text = f"""
[services.job]
command = {py("-c", "import time; time.sleep(30)")}
timeout = 0.3
[services.app]
command = {listener()}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
depends_on = {{ job = "completed" }}
"""
        with pytest.raises(StackFailed, match=r"did not complete within 0\.3 s"):
            Stack.load(write_stack(tmp_path, text)).start()


class TestRestart:
    """``restart = "on-failure"`` starts a crashed service again, up to a cap."""

    def test_restarted_once(self, tmp_path: Path) -> None:
        """A service that crashes once after being ready is back, with one restart."""
        counter = tmp_path / "count"
        text = f"""
[services.flaky]
command = {listener(0, str(counter), "1")}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
restart = "on-failure"
"""
        seen = Recording()
        with Stack.load(write_stack(tmp_path, text)).up(on_change=seen) as running:
            assert wait_until(lambda: running.snapshot()["flaky"]["restarts"] == 1, 10)
            assert wait_until(lambda: running.status("flaky") is Status.READY, 10)
            assert running.failure is None
        assert ("flaky", Status.RESTARTING) in seen.changes
        assert counter.read_text() == "xx"

    def test_cap(self, tmp_path: Path) -> None:
        """Past ``max_restarts`` the service has failed, and the run says so."""
        counter = tmp_path / "count"
        text = f"""
[services.broken]
command = {listener(0, str(counter), "99")}
ready = {{ tcp = "127.0.0.1:{{port}}" }}
restart = "on-failure"
max_restarts = 1
"""
        with Stack.load(write_stack(tmp_path, text)).up() as running:
            assert running.wait(20)
            assert running.failure is not None
            assert "after 1 restarts" in str(running.failure)
            assert running.status("broken") is Status.FAILED

    def test_restarting_satisfies_no_dependent(self) -> None:
        """A restarting service is neither started nor ready for its dependents."""
        assert not any(holds(condition, Status.RESTARTING) for condition in Condition)


class TestLoad:
    """``Stack.load`` finds the file as ``mirakuru up`` does."""

    def test_nearest_parent(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """From a subdirectory, the file of a parent directory is found."""
        write_stack(tmp_path, f"[services.a]\ncommand = {py('-V')}\n")
        (tmp_path / "deep" / "er").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "deep" / "er")
        assert Stack.load().path == str(tmp_path / "mirakuru.toml")

    def test_pyproject_table(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``[tool.mirakuru]`` in pyproject.toml works; a nearer mirakuru.toml wins."""
        write_stack(
            tmp_path, f"[tool.mirakuru.services.far]\ncommand = {py('-V')}\n", "pyproject.toml"
        )
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path / "sub")
        assert Stack.load().names == ("far",)
        write_stack(tmp_path / "sub", "[project]\nname = 'x'\n", "pyproject.toml")
        assert Stack.load().names == ("far",)  # a pyproject without the table is skipped
        write_stack(tmp_path / "sub", f"[services.near]\ncommand = {py('-V')}\n")
        assert Stack.load().names == ("near",)
        assert Stack.load(tmp_path / "pyproject.toml").names == ("far",)

    def test_missing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """No file anywhere, or a named file that does not exist: StackFileNotFound."""
        monkeypatch.chdir(tmp_path)
        if any((parent / "mirakuru.toml").exists() for parent in tmp_path.parents):
            pytest.skip("a mirakuru.toml above the temporary directory")
        with pytest.raises(StackFileNotFound):
            Stack.load()
        with pytest.raises(StackFileNotFound, match="no such file"):
            Stack.load(tmp_path / "nope.toml")

    def test_fingerprint(self, tmp_path: Path) -> None:
        """Each service's fingerprint is stable across loads and includes the version."""
        path = write_stack(tmp_path, THREE)
        assert Stack.load(path).fingerprint("web") == Stack.load(path).fingerprint("web")
        assert Stack.load(path).fingerprint("web") != Stack.load(path).fingerprint("cache")
