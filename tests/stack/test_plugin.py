"""``stack_fixture``: a stack service as a session fixture, shared by xdist workers."""

from __future__ import annotations

import json

import psutil
import pytest

from tests.helpers import PYTHON, wait_until
from tests.stack.programs import LISTENER, write_stack

STACK = """
[services.cache]
command = [{python}, "-c", {listener}, "{{port}}", "0", {cache_starts}, "0"]
ready = {{ tcp = "127.0.0.1:{{port}}" }}

[services.api]
command = [{python}, "-c", {listener}, "{{port}}", "0", {api_starts}, "0"]
ready = {{ tcp = "127.0.0.1:{{port}}" }}
depends_on = ["cache"]
env = {{ CACHE_PORT = "{{cache.port}}" }}
"""

CONFTEST = """
from mirakuru.pytest_plugin import stack_fixture

api = stack_fixture("api")
"""

TESTS = """
import os, socket

def test_api(api):
    assert api.ports["api"] == api.port
    owner = not hasattr(api, "owner_pid")
    if owner:
        assert api.envvars["CACHE_PORT"] == str(api.ports["cache"])
    for port in api.ports.values():
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with open(os.environ["RECORDS"] + "/pids", "a") as f:
        f.write(f"{api.process.pid if owner else api.pid}\\n")

def test_again(api):
    socket.create_connection(("127.0.0.1", api.port), timeout=5).close()
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with a two-service stack whose services count their starts."""
    monkeypatch.setenv("RECORDS", str(pytester.path))
    write_stack(
        pytester.path,
        STACK.format(
            python=json.dumps(PYTHON),
            listener=json.dumps(LISTENER),
            cache_starts=json.dumps(str(pytester.path / "cache-starts")),
            api_starts=json.dumps(str(pytester.path / "api-starts")),
        ),
    )
    pytester.makeconftest(CONFTEST)
    return pytester


def _starts(pytester: pytest.Pytester, name: str) -> int:
    path = pytester.path / f"{name}-starts"
    return len(path.read_text()) if path.exists() else 0


def _gone(pytester: pytest.Pytester) -> bool:
    pids = [int(line) for line in (pytester.path / "pids").read_text().split()]
    return not any(psutil.pid_exists(pid) for pid in pids)


BOTH = """
from mirakuru.pytest_plugin import stack_fixture

cache = stack_fixture("cache")
api = stack_fixture("api")
"""

BOTH_TESTS = """
import os

def test_cache(cache):
    with open(os.environ["RECORDS"] + "/cache-pids", "a") as f:
        f.write(f"{cache.process.pid if hasattr(cache, 'process') else cache.pid}\\n")

def test_api(api, cache):
    assert api.ports["cache"] == cache.port
"""


class TestSharedDependencies:
    """Two stack fixtures of one stack (api needs cache) share one cache."""

    @pytest.mark.parametrize("options", [(), ("-n", "2", "--dist", "each")], ids=["one", "xdist"])
    def test_dependency_started_once(
        self, project: pytest.Pytester, options: tuple[str, ...]
    ) -> None:
        """cache and api both used: cache starts once, api uses it."""
        project.makeconftest(BOTH)
        project.makepyfile(BOTH_TESTS)
        result = project.runpytest_subprocess(*options)
        result.assert_outcomes(passed=2 if not options else 4)
        assert (_starts(project, "cache"), _starts(project, "api")) == (1, 1)
        pids = (project.path / "cache-pids").read_text().split()
        assert len(set(pids)) == 1
        assert wait_until(lambda: not any(psutil.pid_exists(int(pid)) for pid in pids), 10)


class TestStackFixture:
    """The fixture starts the service after its dependencies, once per run."""

    def test_in_one_process(self, project: pytest.Pytester) -> None:
        """Both tests get the same started api; cache started first; all stopped after."""
        project.makepyfile(TESTS)
        result = project.runpytest_subprocess()
        result.assert_outcomes(passed=2)
        assert (_starts(project, "cache"), _starts(project, "api")) == (1, 1)
        assert wait_until(lambda: _gone(project), 10)

    def test_started_once_under_xdist(self, project: pytest.Pytester) -> None:
        """With ``-n 2`` (every test on each worker) the stack starts once."""
        project.makepyfile(TESTS)
        result = project.runpytest_subprocess("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=4)
        assert (_starts(project, "cache"), _starts(project, "api")) == (1, 1)
        pids = (project.path / "pids").read_text().split()
        assert len(pids) == 2
        assert len(set(pids)) == 1
        assert wait_until(lambda: _gone(project), 10)

    def test_report_section(self, project: pytest.Pytester) -> None:
        """A failing test's report describes the stack service it used."""
        project.makepyfile("def test_fails(api):\n    assert False\n")
        result = project.runpytest_subprocess()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*- mirakuru: api -*", "command: *", "port: *"])

    def test_bad_file_is_a_clear_error(self, project: pytest.Pytester) -> None:
        """A mistake in the stack file errors the test with the key path; nothing starts."""
        (project.path / "mirakuru.toml").write_text('[services.api]\ncomand = "x"\n')
        project.makepyfile("def test_api(api):\n    pass\n")
        result = project.runpytest_subprocess()
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*UnknownKey*services.api.comand: unknown key*"])
