"""One service for every xdist worker: started once, kept until the last worker ends."""

from __future__ import annotations

import functools

import psutil
import pytest

from tests.helpers import needs_watchdog_pins, wait_until

CONFTEST = """
import os
import pathlib
import sys

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

# Appends its own PID to starts.txt, then listens: the outer test counts the starts.
SERVE = (
    "import os, socket, sys, time\\n"
    "with open(sys.argv[2], 'a') as f: f.write(f'{os.getpid()}\\\\n')\\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\\n"
    "while True: s.accept()[0].close()\\n"
)

db = service_fixture(
    [sys.executable, "-c", SERVE, "{port}", os.path.join(os.environ["RECORDS"], "starts.txt")],
    ready=lambda port: probes.tcp("127.0.0.1", port),
    shared=True,
)


def shared_dir(tmp_path_factory):
    from mirakuru.pytest_plugin.shared import share_key

    return tmp_path_factory.getbasetemp().parent / "mirakuru-shared" / share_key("db", __file__)


def note(kind, service):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = os.path.join(os.environ["RECORDS"], "uses.txt")
    with open(path, "a") as f:
        f.write(f"{worker} {kind} {service.port} {os.getpid()}\\n")


def wait_for(predicate, timeout=30.0):
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)
"""


def _starts(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "starts.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _uses(pytester: pytest.Pytester) -> list[list[str]]:
    path = pytester.path / "uses.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with a shared ``db`` service that records each of its starts."""
    monkeypatch.setenv("RECORDS", str(pytester.path))
    pytester.makeconftest(CONFTEST)
    return pytester


def _assert_stopped(pytester: pytest.Pytester) -> None:
    for pid in _starts(pytester):
        assert wait_until(functools.partial(_gone, pid), 5.0), (
            f"the shared service (pid {pid}) outlived the run"
        )


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid)


class TestSharedAcrossWorkers:
    """Under ``-n 2`` the first worker starts the service and the others attach to it."""

    def test_started_once_and_kept_for_the_last_worker(self, project: pytest.Pytester) -> None:
        """The owner finishes first and waits; the other worker still reaches the service."""
        project.makepyfile(
            """
            import socket
            from conftest import note, shared_dir, wait_for
            from mirakuru.pytest_plugin.shared import SharedService

            def test_use(db):
                note("attached" if isinstance(db, SharedService) else "owner", db)
                socket.create_connection(("127.0.0.1", db.port), timeout=5).close()

            def test_outlive_the_owner(db, tmp_path_factory):
                if isinstance(db, SharedService):
                    # The owner is in its session teardown, waiting for this worker.
                    draining = shared_dir(tmp_path_factory) / "draining"
                    wait_for(draining.exists)
                    assert db.running()
                    socket.create_connection(("127.0.0.1", db.port), timeout=5).close()
                    note("after-owner", db)
            """
        )
        result = project.runpytest_subprocess("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=4)
        assert len(_starts(project)) == 1
        uses = _uses(project)
        assert sorted(kind for _, kind, _, _ in uses) == ["after-owner", "attached", "owner"]
        assert len({port for _, _, port, _ in uses}) == 1
        _assert_stopped(project)

    def test_declared_in_a_subdirectory_conftest(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A conftest loaded during collection still makes the owner wait for every worker."""
        monkeypatch.setenv("RECORDS", str(pytester.path))
        sub = pytester.mkpydir("sub")
        (sub / "conftest.py").write_text(CONFTEST)
        (sub / "test_sub.py").write_text("def test_use(db):\n    assert db.port\n")
        result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=2)
        assert len(_starts(pytester)) == 1
        _assert_stopped(pytester)

    def test_a_crashed_worker_does_not_keep_it_alive(self, project: pytest.Pytester) -> None:
        """An attached worker that dies (os._exit) leaves a dead lease, which is ignored."""
        project.makepyfile(
            """
            import os
            from conftest import note
            from mirakuru.pytest_plugin.shared import SharedService

            def test_use_and_maybe_crash(db):
                if isinstance(db, SharedService):
                    note("crashing", db)
                    os._exit(1)
                note("owner", db)
            """
        )
        result = project.runpytest_subprocess(
            "-n", "2", "--dist", "each", "--max-worker-restart", "0"
        )
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed") == 1
        assert sorted(kind for _, kind, _, _ in _uses(project)) == ["crashing", "owner"]
        assert len(_starts(project)) == 1
        _assert_stopped(project)

    @needs_watchdog_pins
    def test_owner_gone_is_a_clear_error(self, project: pytest.Pytester) -> None:
        """A worker that finds the owner dead is told so, and signals nothing."""
        project.makepyfile(
            """
            import json, os
            import psutil
            from conftest import note, shared_dir, wait_for

            def test_owner_dies_or_sees_it(request, tmp_path_factory):
                info = shared_dir(tmp_path_factory) / "service.json"
                marker = shared_dir(tmp_path_factory).parent / "owner-dying"
                if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
                    db = request.getfixturevalue("db")
                    note("owner", db)
                    marker.touch()
                    os._exit(1)
                wait_for(marker.exists)
                pid = json.loads(info.read_text())["pid"]
                # The owner's watchdog takes the service down with it.
                wait_for(lambda: not psutil.pid_exists(pid))
                request.getfixturevalue("db")
            """
        )
        result = project.runpytest_subprocess(
            "-n", "2", "--dist", "each", "--max-worker-restart", "0"
        )
        result.stdout.fnmatch_lines(["*SharedServiceGone: shared service 'db'*which is gone*"])
        assert len(_starts(project)) == 1
        _assert_stopped(project)


class TestWithoutXdist:
    """Without xdist a shared service is a plain session service."""

    def test_plain_session_service(self, project: pytest.Pytester) -> None:
        """It starts once for the session and is stopped at its end."""
        project.makepyfile(
            """
            from conftest import note

            def test_one(db):
                note("main", db)

            def test_two(db):
                note("main", db)
            """
        )
        project.runpytest_subprocess().assert_outcomes(passed=2)
        assert len(_starts(project)) == 1
        assert not (project.path / "mirakuru-shared").exists()
        _assert_stopped(project)


def test_shared_needs_session_scope() -> None:
    """Sharing a function-scoped service is refused when it is declared."""
    from mirakuru.pytest_plugin import service_fixture

    with pytest.raises(ValueError, match="shared=True needs scope='session'"):
        service_fixture("true", shared=True, scope="function")
