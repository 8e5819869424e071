"""The pytest plugin given what a real project writes: clashing names, odd values, limits."""

from __future__ import annotations

import re

import pytest

#: A service that prints 100 bytes, then listens on its port until stopped.
LISTENER = """
import sys

LISTEN = (
    "import socket, sys, time\\n"
    "print('x' * 99, flush=True)\\n"
    "server = socket.create_server(('127.0.0.1', int(sys.argv[1])))\\n"
    "time.sleep(60)\\n"
)


def command(*extra):
    return [sys.executable, "-c", LISTEN, "{port}", *extra]
"""


#: The library's own error for ``envvars={"N": 5}``.
NAMED_KEY = r".*TypeError: envvars\['N'\] must be a str, got 5 \(int\)"


class TestServiceFixtureArguments:
    """service_fixture passes executor keywords through and checks what it fills in."""

    def test_output_limit_reaches_the_executor(self, pytester: pytest.Pytester) -> None:
        """``service_fixture(..., output_limit=10)`` keeps ten bytes of the output."""
        pytester.makepyfile(listener=LISTENER)
        pytester.makeconftest(
            """
            from listener import command
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            svc = service_fixture(
                command(), ready=lambda port: probes.tcp("127.0.0.1", port), output_limit=10
            )
            """
        )
        pytester.makepyfile(
            """
            def test_limit(svc):
                svc.stop()
                assert svc.output().read() == "x" * 10
            """
        )
        pytester.runpytest_subprocess().assert_outcomes(passed=1)

    def test_a_non_string_environment_value_names_its_key(self, pytester: pytest.Pytester) -> None:
        """``envvars={"N": 5}`` is the library's TypeError naming ``N``, not an AttributeError."""
        pytester.makepyfile(listener=LISTENER)
        pytester.makeconftest(
            """
            from listener import command
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            svc = service_fixture(
                command(), ready=lambda port: probes.tcp("127.0.0.1", port), envvars={"N": 5}
            )
            """
        )
        pytester.makepyfile("def test_uses(svc):\n    pass\n")
        result = pytester.runpytest_subprocess()
        assert result.ret != 0
        # A conftest that fails to load is reported on standard error.
        output = result.stdout.str() + result.stderr.str()
        assert "AttributeError" not in output
        assert re.search(NAMED_KEY, output), output

    def test_a_factory_returning_a_non_string_value_names_its_key(
        self, pytester: pytest.Pytester
    ) -> None:
        """A factory's ``envvars`` are checked the same way, at set-up."""
        pytester.makepyfile(listener=LISTENER)
        pytester.makeconftest(
            """
            from listener import command
            from mirakuru import probes
            from mirakuru.pytest_plugin import service_fixture

            def build(port):
                return {"command": command(), "envvars": {"PORT": "{port}", "N": 5}}

            svc = service_fixture(build, ready=lambda port: probes.tcp("127.0.0.1", port))
            """
        )
        pytester.makepyfile("def test_uses(svc):\n    pass\n")
        result = pytester.runpytest_subprocess()
        result.assert_outcomes(errors=1)
        assert "AttributeError" not in result.stdout.str()
        result.stdout.re_match_lines([NAMED_KEY])


#: A conftest in directory ``{where}`` declaring a shared ``svc`` that says where it is from.
SHARED_IN = """
import sys
from listener import command
from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

svc = service_fixture(
    command("{where}"), ready=lambda port: probes.tcp("127.0.0.1", port), shared=True
)
"""

#: A test in directory ``{where}`` checking it got the ``svc`` declared there.
USES_OWN = """
def test_own_service(svc):
    assert svc.command.split()[-1] == "{where}"
"""


class TestSharedDeclarations:
    """Shared services are told apart by their declaration, not by the fixture name alone."""

    def test_two_conftests_one_name(self, pytester: pytest.Pytester) -> None:
        """``svc`` declared in ``a/`` and in ``b/``: under ``-n 2`` each test gets its own."""
        pytester.makepyfile(listener=LISTENER)
        for where in ("a", "b"):
            directory = pytester.mkpydir(where)
            (directory / "conftest.py").write_text(SHARED_IN.format(where=where))
            (directory / f"test_{where}.py").write_text(USES_OWN.format(where=where))
        result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
        result.assert_outcomes(passed=4)
