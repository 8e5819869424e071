"""Reuse with ``service_fixture(reuse=True)``, tests that stop a kept service, the report of a
failed test, and how reuse meets stacks that ``mirakuru up`` runs."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PYTHON, needs_watchdog_pins, wait_until
from tests.stack.test_reuse import LIMIT, REDIS, TESTS, Project, _alive, cli

KEPT_REDIS = """
from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

cache = service_fixture(
    "redis-server --port {port} --save '' --appendonly no",
    lambda port: probes.tcp("127.0.0.1", port),
    reuse=True,
)
"""


@pytest.fixture
def declared(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project declaring redis with ``service_fixture(reuse=True)``; ended afterwards."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("MIRAKURU_REUSE", "1")
    monkeypatch.setenv("RECORDS", str(pytester.path / "records"))
    pytester.makeconftest(KEPT_REDIS)
    pytester.makepyfile(test_cache=TESTS)
    made = Project(pytester)
    yield made
    supervisors = [int(str(stack["pid"])) for stack in made.kept()]
    assert cli(made.path, "down", "--all").returncode == 0
    pids = [pid for pid, _, _ in made.runs()] + supervisors
    assert wait_until(lambda: not any(_alive(pid) for pid in pids), LIMIT)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The stack project of test_reuse (redis as ``cache``), reuse on; ended afterwards."""
    from tests.stack.programs import write_stack

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("MIRAKURU_REUSE", "1")
    monkeypatch.setenv("RECORDS", str(pytester.path / "records"))
    write_stack(pytester.path, REDIS)
    pytester.makeconftest(
        "from mirakuru.pytest_plugin import stack_fixture\n\ncache = stack_fixture('cache')\n"
    )
    pytester.makepyfile(test_cache=TESTS)
    made = Project(pytester)
    yield made
    supervisors = [int(str(stack["pid"])) for stack in made.kept()]
    assert cli(made.path, "down", "--all").returncode == 0
    pids = [pid for pid, _, _ in made.runs()] + supervisors
    assert wait_until(lambda: not any(_alive(pid) for pid in pids), LIMIT)


class TestServiceFixture:
    """``service_fixture(..., reuse=True)`` is kept like a stack service."""

    def test_kept_and_attached(self, declared: Project) -> None:
        """Run 2 gets run 1's redis; the summary says how to end it."""
        first = declared.run()
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(
            ["*conftest.py::cache: cache (pid *, started)", "end them with: mirakuru down --all"]
        )
        declared.run().assert_outcomes(passed=1)
        (pid, port, verdict), (again, same_port, attached) = declared.runs()
        assert (verdict, attached) == ("missing", "attach")
        assert (again, same_port) == (pid, port)

    def test_off_without_reuse(self, declared: Project, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without reuse on, reuse=True changes nothing: started and stopped as usual."""
        monkeypatch.delenv("MIRAKURU_REUSE")
        declared.run().assert_outcomes(passed=1)
        [(pid, _, verdict)] = declared.runs()
        assert verdict == "own"
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert declared.kept() == []

    def test_changed_probe_restarts(self, declared: Project) -> None:
        """The probe is part of the definition: another probe, another service."""
        declared.run().assert_outcomes(passed=1)
        conftest = declared.path / "conftest.py"
        conftest.write_text(conftest.read_text().replace('"127.0.0.1", port', '"localhost", port'))
        declared.run().assert_outcomes(passed=1)
        (old, _, _), (new, _, verdict) = declared.runs()
        assert verdict == "changed"
        assert new != old
        assert wait_until(lambda: not _alive(old), LIMIT)

    @pytest.mark.parametrize(
        ("arguments", "error"),
        [
            ("'sleep 1', scope='module', reuse=True", "reuse=True needs scope='session'"),
            ("lambda: 'sleep 1', reuse=True", "not a function"),
            ("'sleep 1', shell=True, reuse=True", "cannot keep a service with shell"),
        ],
        ids=["scope", "factory", "shell"],
    )
    def test_refused_where_declared(
        self, pytester: pytest.Pytester, arguments: str, error: str
    ) -> None:
        """What cannot be kept is refused when the conftest is loaded, naming the reason."""
        declare = "from mirakuru.pytest_plugin import service_fixture\n"
        pytester.makeconftest(f"{declare}svc = service_fixture({arguments})\n")
        pytester.makepyfile("def test_it():\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        assert result.ret != 0
        result.stderr.fnmatch_lines([f"*{error}*"])


STOPPING = """
import os, socket, pytest

def test_stop_and_start(cache):
    port = cache.port
    cache.stop()
    assert not cache.running()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    cache.start()
    assert cache.running() and cache.port == port
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with open(os.environ["RECORDS"], "a") as f:
        f.write(f"{cache.pid} {cache.port} restarted\\n")

def test_fails(cache):
    assert False
"""


class TestInTests:
    """A test that stops a kept service gets what it would get without reuse."""

    def test_stop_then_start(self, project: Project) -> None:
        """stop() ends the process, start() brings it back on its port; the report says kept."""
        project.pytester.makepyfile(test_cache=STOPPING)
        result = project.run()
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            ["*- mirakuru: cache -*", "command: redis-server *", "kept: by supervisor pid *"]
        )
        [(pid, _, _)] = project.runs()
        assert _alive(pid)
        result.stdout.fnmatch_lines([f"*cache (pid {pid}, port *"])


class TestWithUp:
    """Reuse attaches to a stack ``mirakuru up --detach`` runs, never to a foreground one."""

    def test_attaches_to_a_detached_stack(self, project: Project) -> None:
        """The run gets the detached stack's redis, which stays up after the run."""
        done = cli(project.path, "up", "--detach")
        assert done.returncode == 0, done.stderr
        project.run().assert_outcomes(passed=1)
        [(pid, _, verdict)] = project.runs()
        assert verdict == "attach"
        status = cli(project.path, "status")
        assert "running detached" in status.stdout
        assert str(pid) in status.stdout

    def test_foreground_stack_is_left_alone(self, project: Project) -> None:
        """With ``mirakuru up`` in the foreground, the run starts its own, as without reuse."""
        up = subprocess.Popen(
            [PYTHON, "-m", "mirakuru", "up"],
            cwd=project.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(lambda: cli(project.path, "status").returncode == 0, LIMIT)
            result = project.run()
            result.assert_outcomes(passed=1)
            result.stdout.fnmatch_lines(["mirakuru: not kept (*): *runs in the foreground*"])
            [(pid, _, verdict)] = project.runs()
            assert verdict == "own"
            assert wait_until(lambda: not _alive(pid), LIMIT)
        finally:
            up.send_signal(signal.SIGTERM)
            assert up.wait(LIMIT) == 0

    @needs_watchdog_pins
    def test_supervisor_killed_between_runs(self, project: Project) -> None:
        """Its supervisor killed: the watchdog ends the service; the next run starts anew."""
        project.run().assert_outcomes(passed=1)
        [(pid, _, _)] = project.runs()
        [stack] = project.kept()
        os.kill(int(str(stack["pid"])), signal.SIGKILL)
        assert wait_until(lambda: not _alive(pid), LIMIT)
        project.run().assert_outcomes(passed=1)
        (_, _, _), (new, _, verdict) = project.runs()
        assert verdict == "missing"
        assert new != pid


def test_paths_kept_apart(tmp_path: Path) -> None:
    """Two conftests declaring a kept service of one name get two supervisors' keys."""
    from mirakuru.pytest_plugin.keepable import declaration

    one = declaration("sleep 9", None, {}, "svc", str(tmp_path / "a" / "conftest.py"))
    two = declaration("sleep 9", None, {}, "svc", str(tmp_path / "b" / "conftest.py"))
    assert one.source != two.source
    assert one.names == two.names == ("svc",)
