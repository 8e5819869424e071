"""The plugin for real suites: services from fixtures, parallel start, hand-started reports."""

from __future__ import annotations

import functools

import pytest

from tests.helpers import processes_with_token_prefix, wait_until

#: Records each executor's token so the outer test can check that none outlived the run.
RECORD = """
import os

def record(executor):
    with open(os.path.join(os.environ["RECORDS"], "tokens.txt"), "a") as tokens:
        tokens.write(executor._uuid + "\\n")
"""


def _assert_all_gone(pytester: pytest.Pytester) -> None:
    path = pytester.path / "tokens.txt"
    tokens = path.read_text().split() if path.exists() else []
    assert tokens, "the inner run recorded no service"
    for token in tokens:
        assert wait_until(functools.partial(_gone, token), 5.0), f"{token} outlived the run"


def _gone(token: str) -> bool:
    return not processes_with_token_prefix(token)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with the ``record`` helper importable from its tests."""
    monkeypatch.setenv("RECORDS", str(pytester.path))
    pytester.makepyfile(recording=RECORD)
    return pytester


class TestServiceFromFixtures:
    """A factory taking fixtures by name builds the service at set-up."""

    def test_factory_uses_other_fixtures_and_port(self, project: pytest.Pytester) -> None:
        """The command comes from a config-file fixture; ``port`` is a free port."""
        project.makeconftest(
            """
            import sys
            import pytest
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            SERVE = (
                "import socket, sys\\n"
                "greeting = open(sys.argv[1]).read().strip()\\n"
                "print(greeting, flush=True)\\n"
                "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen()\\n"
                "import time; time.sleep(60)\\n"
            )

            @pytest.fixture(scope="session")
            def config_file(tmp_path_factory):
                path = tmp_path_factory.mktemp("cfg") / "greeting.txt"
                path.write_text("hello from the config")
                return path

            def make_server(config_file, port):
                return {
                    "command": [sys.executable, "-c", SERVE, str(config_file), str(port)],
                    "ready": probes.tcp("127.0.0.1", port),
                }

            server = service_fixture(make_server)
            """
        )
        project.makepyfile(
            """
            import socket
            from recording import record

            def test_server(server, config_file):
                record(server)
                assert server.port
                socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
                assert "[stdout] hello from the config" in server.output_tail()
                assert str(config_file) in server.command
            """
        )
        project.runpytest_subprocess().assert_outcomes(passed=1)
        _assert_all_gone(project)

    def test_factory_returning_an_executor(self, project: pytest.Pytester) -> None:
        """A factory may build the executor itself; it is still stopped and reported."""
        project.makeconftest(
            """
            import sys
            from mirakuru import Executor, probes
            from mirakuru.pytest_plugin import service_fixture

            def make(tmp_path_factory):
                folder = tmp_path_factory.mktemp("svc")
                return Executor(
                    [sys.executable, "-c",
                     "import time; print('up', flush=True); time.sleep(60)"],
                    ready=probes.banner("^up$"),
                    cwd=str(folder),
                )

            svc = service_fixture(make, scope="function")
            """
        )
        project.makepyfile(
            """
            from recording import record

            def test_fails(svc):
                record(svc)
                assert False, "the test failed"
            """
        )
        result = project.runpytest_subprocess()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*- mirakuru: svc -*", "state: running", "*?stdout? up"])
        _assert_all_gone(project)

    def test_bad_factory_result_is_a_clear_error(self, pytester: pytest.Pytester) -> None:
        """A factory returning something unusable errors the test, naming the factory."""
        pytester.makeconftest(
            """
            from mirakuru.pytest_plugin import service_fixture

            def make():
                return 42

            svc = service_fixture(make)
            """
        )
        pytester.makepyfile("def test_it(svc):\n    pass\n")
        result = pytester.runpytest_subprocess()
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*the service factory make returned 42*"])


class TestParallelStart:
    """Session services the selected tests need start at once."""

    CONFTEST = """
    import sys
    from mirakuru import probes
    from mirakuru.pytest_plugin import service_fixture

    # Ready only once all three have started: one after another, the first never is.
    BARRIER = (
        "import pathlib, sys, time\\n"
        "d = pathlib.Path(sys.argv[1]); d.mkdir(exist_ok=True); (d / sys.argv[2]).touch()\\n"
        "deadline = time.monotonic() + 20\\n"
        "while len(list(d.iterdir())) < 3 and time.monotonic() < deadline:\\n"
        "    time.sleep(0.01)\\n"
        "print('ready', flush=True)\\n"
        "time.sleep(60)\\n"
    )

    def barrier(name):
        def make(tmp_path_factory):
            folder = tmp_path_factory.getbasetemp() / "barrier"
            return [sys.executable, "-c", BARRIER, str(folder), name]
        return service_fixture(make, probes.banner("^ready$"), timeout=10)

    first = barrier("first")
    second = barrier("second")
    third = barrier("third")
    """

    def test_three_services_start_together(self, project: pytest.Pytester) -> None:
        """Each of three services needs the other two running before it is ready."""
        project.makeconftest(self.CONFTEST)
        project.makepyfile(
            """
            from recording import record

            def test_one(first):
                record(first)

            def test_two(second, third):
                record(second)
                record(third)
                assert second.running() and third.running()
            """
        )
        project.runpytest_subprocess().assert_outcomes(passed=2)
        _assert_all_gone(project)

    def test_deselected_services_are_not_started(self, project: pytest.Pytester) -> None:
        """Only the services of the selected tests start; alone, one cannot pass the barrier."""
        project.makeconftest(self.CONFTEST)
        project.makepyfile(
            """
            def test_one(first):
                pass

            def test_two(second, third):
                pass
            """
        )
        result = project.runpytest_subprocess("-k", "test_one")
        result.assert_outcomes(errors=1, deselected=1)
        result.stdout.fnmatch_lines(["*TimeoutExpired*"])

    def test_a_skipping_dependency_skips_only_its_service(self, pytester: pytest.Pytester) -> None:
        """Starting together does not turn one service's skip into the others' error."""
        pytester.makeconftest(
            """
            import sys
            import pytest
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            UP = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]

            @pytest.fixture(scope="session")
            def missing_tool():
                pytest.skip("the tool is not installed")

            def needs_tool(missing_tool):
                return UP

            def takes_request(request):
                return UP

            plain = service_fixture(UP, probes.banner("^up$"))
            tooled = service_fixture(needs_tool, probes.banner("^up$"))
            asking = service_fixture(takes_request, probes.banner("^up$"))
            """
        )
        pytester.makepyfile(
            """
            def test_plain(plain, asking):
                assert plain.running() and asking.running()

            def test_tooled(tooled):
                pass
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=1, skipped=1)


class TestHandStartedExecutors:
    """Executors a test or its fixture starts by hand are described when it fails."""

    def test_fixture_executor_is_reported(self, project: pytest.Pytester) -> None:
        """A ``with Executor(...)`` fixture's service gets a section in the failure report."""
        project.makeconftest(
            """
            import sys
            import pytest
            from mirakuru import Executor, probes

            @pytest.fixture
            def by_hand():
                code = "import time; print('manual service', flush=True); time.sleep(60)"
                with Executor([sys.executable, "-c", code], ready=probes.banner("manual")) as ex:
                    yield ex
            """
        )
        project.makepyfile(
            """
            from recording import record

            def test_passes(by_hand):
                record(by_hand)

            def test_fails(by_hand):
                record(by_hand)
                assert False
            """
        )
        result = project.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*- mirakuru: *manual service*", "state: running"])
        assert result.stdout.str().count("- mirakuru: ") == 1
        _assert_all_gone(project)


class TestServiceThatDied:
    """A service that exits during the tests is described as such."""

    def test_exit_code_in_the_report(self, project: pytest.Pytester) -> None:
        """The section says it exited with its code, with the output tail."""
        project.makeconftest(
            """
            import sys
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            svc = service_fixture(
                [sys.executable, "-c",
                 "import sys; print('going', flush=True); sys.stdin.readline(); sys.exit(7)"],
                ready=probes.banner("^going$"),
            )
            """
        )
        project.makepyfile(
            """
            from recording import record

            def test_fails(svc):
                record(svc)
                svc.process.stdin.write("bye\\n")
                svc.process.stdin.flush()
                svc.process.wait(10)
                assert False
            """
        )
        result = project.runpytest_subprocess()
        # stop() at teardown reports the non-zero exit too, as the published API does.
        result.assert_outcomes(failed=1, errors=1)
        result.stdout.fnmatch_lines(
            ["*- mirakuru: svc -*", "the service exited with code 7 at +* s", "*?stdout? going"]
        )
        _assert_all_gone(project)


class TestTimeoutReport:
    """A service that never gets ready is reported with its output once, stderr included."""

    def test_tail_once_with_stderr(self, pytester: pytest.Pytester) -> None:
        """The error carries the tail (stderr captured by default); the section points to it."""
        pytester.makeconftest(
            """
            import sys
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            slow = service_fixture(
                [sys.executable, "-c",
                 "import sys, time; print('still booting', file=sys.stderr, flush=True);"
                 " time.sleep(60)"],
                ready=probes.banner("^never$"),
                timeout=1,
            )
            """
        )
        pytester.makepyfile("def test_needs_it(slow):\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                "E *TimeoutExpired*",
                "*?stderr? still booting",
                "*- mirakuru: slow -*",
                "output tail: (shown in the error above)",
            ]
        )
        # The short summary repeats the whole message when CI is set (pytest does not cut
        # it there), so count in the report proper.
        report = result.stdout.str().partition("short test summary info")[0]
        assert report.count("[stderr] still booting") == 1
        assert "pytest_plugin" not in result.stdout.str()
