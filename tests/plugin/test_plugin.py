"""The pytest plugin, exercised through whole pytest runs in a subprocess (pytester)."""

from __future__ import annotations

import functools
import os
import textwrap

import pytest

from mirakuru.pytest_plugin import Service
from mirakuru.pytest_plugin.shared import SharedService
from tests.helpers import processes_with_token_prefix, wait_until

#: A service that greets on stdout, then listens on the port given as its argument.
GREETER = (
    "import socket, sys, time\n"
    "print('hello from the service', flush=True)\n"
    "server = socket.socket()\n"
    "server.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "server.listen()\n"
    "time.sleep(60)\n"
)

CONFTEST = f"""
import os
import pathlib
import sys

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

GREETER = {GREETER!r}

svc = service_fixture(
    [sys.executable, "-c", GREETER, "{{port}}"],
    ready=lambda port: probes.tcp("127.0.0.1", port),
)


def record(executor):
    # The outer test checks that every process marked with these tokens is gone.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open("tokens.txt", "a") as tokens:
        tokens.write(f"{{worker}} {{executor.port}} {{executor._uuid}}\\n")
"""


def _records(pytester: pytest.Pytester) -> list[tuple[str, int, str]]:
    path = pytester.path / "tokens.txt"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(worker, int(port), token) for worker, port, token in rows]


def _assert_all_gone(pytester: pytest.Pytester) -> None:
    for _, _, token in _records(pytester):
        assert wait_until(functools.partial(_gone, token), 5.0), (
            f"a service with token {token} outlived the pytest run"
        )


def _gone(token: str) -> bool:
    return not processes_with_token_prefix(token)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose conftest declares the ``svc`` service on a free port."""
    pytester.makeconftest(CONFTEST)
    return pytester


class TestServiceFixture:
    """A declared service is started, handed to tests, and stopped at the end of its scope."""

    def test_yields_a_ready_service_with_its_port(self, project: pytest.Pytester) -> None:
        """The fixture value is the running executor, and ``.port`` accepts connections."""
        project.makepyfile(
            """
            import socket
            from conftest import record

            def test_connects(svc):
                record(svc)
                assert svc.running()
                socket.create_connection(("127.0.0.1", svc.port), timeout=5).close()
            """
        )
        result = project.runpytest_subprocess()
        result.assert_outcomes(passed=1)
        assert len(_records(project)) == 1
        _assert_all_gone(project)

    def test_session_scope_shares_one_service(self, project: pytest.Pytester) -> None:
        """Two tests in one session see the same service and port."""
        project.makepyfile(
            """
            from conftest import record

            def test_one(svc):
                record(svc)

            def test_two(svc):
                record(svc)
            """
        )
        project.runpytest_subprocess().assert_outcomes(passed=2)
        first, second = _records(project)
        assert first == second
        _assert_all_gone(project)

    def test_function_scope_and_plain_probe(self, pytester: pytest.Pytester) -> None:
        """A function-scoped service with a ready-made probe restarts for each test."""
        pytester.makeconftest(
            """
            import sys
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            talker = service_fixture(
                [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                ready=probes.banner("^up$"),
                scope="function",
            )
            """
        )
        pytester.makepyfile(
            """
            def test_one(talker):
                assert talker.port is None
                with open("tokens.txt", "a") as f:
                    f.write(f"main 0 {talker._uuid}\\n")

            def test_two(talker):
                with open("tokens.txt", "a") as f:
                    f.write(f"main 0 {talker._uuid}\\n")
            """
        )
        pytester.runpytest_subprocess().assert_outcomes(passed=2)
        first, second = _records(pytester)
        assert first[2] != second[2]
        _assert_all_gone(pytester)


class TestServiceMembers:
    """What the Service type promises, a service fixture's value has."""

    def test_executor_value(self, project: pytest.Pytester) -> None:
        """pid, output(), err_output() and stopped() work on the fixture's executor."""
        project.makepyfile(
            """
            from conftest import record
            from mirakuru.pytest_plugin import Service

            def test_members(svc):
                record(svc)
                assert isinstance(svc, Service)
                assert svc.pid == svc.process.pid
                assert svc.output().readline() == "hello from the service\\n"
                assert svc.err_output() is not None
                with svc.stopped() as paused:
                    assert paused is svc
                    assert not svc.running() and svc.pid is None
                assert svc.running() and svc.pid == svc.process.pid
            """
        )
        project.runpytest_subprocess().assert_outcomes(passed=1)
        _assert_all_gone(project)

    def test_shared_view(self) -> None:
        """Another worker's view of a shared service: no streams, and no stopping it."""
        view = SharedService(
            "db",
            {"command": "db", "port": 1, "pid": os.getpid(), "owner_pid": 1, "pid_started": 0},
        )
        assert isinstance(view, Service)
        assert (view.pid, view.output(), view.err_output()) == (os.getpid(), None, None)
        with pytest.raises(RuntimeError, match="shared service 'db' cannot be stopped"):
            view.stopped()


class TestFailureReport:
    """A failing test's report carries the service's output tail and state history."""

    def test_failing_test_shows_the_service(self, project: pytest.Pytester) -> None:
        """The section names the service and shows its output and its transitions."""
        project.makepyfile(
            """
            from conftest import record

            def test_fails(svc):
                record(svc)
                assert False, "the test itself failed"
            """
        )
        result = project.runpytest_subprocess()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*- mirakuru: svc -*",
                "port: *",
                "state: running",
                "history:",
                "*idle -> starting*",
                "*starting -> running*",
                "output tail:",
                "*hello from the service",
            ]
        )
        _assert_all_gone(project)

    def test_failed_start_up_explains_itself(self, pytester: pytest.Pytester) -> None:
        """A service that dies while starting errors the test, with its last words."""
        pytester.makeconftest(
            """
            import sys
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            broken = service_fixture(
                [sys.executable, "-c",
                 "import sys; print('cannot bind {port}', file=sys.stderr); sys.exit(3)"],
                ready=lambda port: probes.tcp("127.0.0.1", port),
                stderr=-1,
            )
            """
        )
        pytester.makepyfile("def test_needs_it(broken):\n    pass\n")
        result = pytester.runpytest_subprocess()
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                "E * has exited with a non-zero code: 3.",
                "*?stderr? cannot bind *",
                "*- mirakuru: broken -*",
                "state: failed",
                "*starting -> failed*",
                "output tail: (shown in the error above)",
            ]
        )
        # The short summary repeats the whole message when CI is set (pytest does not cut
        # it there), so count in the report proper.
        report = result.stdout.str().partition("short test summary info")[0]
        assert report.count("[stderr] cannot bind") == 1
        assert "pytest_plugin" not in result.stdout.str()

    def test_passing_and_unrelated_tests_get_no_section(self, project: pytest.Pytester) -> None:
        """Only failed tests that use a service get a section."""
        project.makepyfile(
            """
            from conftest import record

            def test_passes(svc):
                record(svc)

            def test_fails_without_service():
                assert False
            """
        )
        result = project.runpytest_subprocess("-rA")
        result.assert_outcomes(passed=1, failed=1)
        assert "mirakuru: svc" not in result.stdout.str()
        _assert_all_gone(project)


class TestXdist:
    """Under pytest-xdist, every worker starts its own service on its own port."""

    def test_two_workers_two_ports(self, project: pytest.Pytester) -> None:
        """With ``--dist each`` both workers run the test, each on a different free port."""
        project.makepyfile(
            """
            import socket
            from conftest import record

            def test_connects(svc):
                record(svc)
                socket.create_connection(("127.0.0.1", svc.port), timeout=5).close()
            """
        )
        result = project.runpytest_subprocess("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=2)
        records = _records(project)
        assert {worker for worker, _, _ in records} == {"gw0", "gw1"}
        assert len({port for _, port, _ in records}) == 2
        _assert_all_gone(project)


class TestInert:
    """The plugin is always loaded once installed, and stays out of runs that do not use it."""

    @pytest.mark.parametrize("options", [(), ("-p", "no:randomly", "-p", "no:cacheprovider")])
    def test_registered_and_harmless(
        self, pytester: pytest.Pytester, options: tuple[str, ...]
    ) -> None:
        """The entry point registers the plugin; a run without services is unchanged."""
        pytester.makepyfile(
            """
            def test_plugin_is_there(request):
                assert request.config.pluginmanager.has_plugin("mirakuru")
            """
        )
        result = pytester.runpytest_subprocess(*options)
        result.assert_outcomes(passed=1)
        body = [line for line in result.stdout.lines if not line.startswith("plugins:")]
        assert not [line for line in body if "mirakuru" in line]

    def test_can_be_disabled(self, pytester: pytest.Pytester) -> None:
        """``-p no:mirakuru`` turns the plugin off."""
        pytester.makepyfile(
            """
            def test_plugin_is_gone(request):
                assert not request.config.pluginmanager.has_plugin("mirakuru")
            """
        )
        pytester.runpytest_subprocess("-p", "no:mirakuru").assert_outcomes(passed=1)

    def test_disabled_with_a_service_says_so(self, project: pytest.Pytester) -> None:
        """A service fixture under ``-p no:mirakuru`` names the plugin, not a missing fixture."""
        project.makepyfile("def test_uses(svc):\n    pass\n")
        result = project.runpytest_subprocess("-p", "no:mirakuru")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*'svc' needs the mirakuru pytest plugin*disabled*"])
        result.stdout.no_fnmatch_line("*fixture 'mirakuru_services' not found*")
        _assert_all_gone(project)


def test_conftest_example_reads_like_the_readme() -> None:
    """The service declaration in the README example is about three lines."""
    declaration = textwrap.dedent(CONFTEST).split("svc = ", 1)[1].split("\n\n", 1)[0]
    assert len(declaration.splitlines()) <= 4
