"""Bad options: a one-line error on stderr and exit status 2, before anything starts."""

from __future__ import annotations

import pytest

from tests.cli.support import lines, run_cli


class TestBadOptions:
    """Every mistake on the command line is exit status 2 with one line of explanation."""

    @pytest.mark.parametrize(
        ("args", "mentions"),
        [
            (["frobnicate"], "frobnicate"),
            (["run"], "COMMAND"),
            (["run", "--tcp", "localhost", "--", "true"], "HOST:PORT"),
            (["run", "--tcp", "localhost:99999", "--", "true"], "65535"),
            (["run", "--timeout", "-1", "--", "true"], "non-negative"),
            (["run", "--timeout", "soon", "--", "true"], "seconds"),
            (["run", "--http", "ftp://host/", "--", "true"], "http://"),
            (["run", "--output", "(", "--", "true"], "regular expression"),
            (["run", "--json", "--quiet", "--", "true"], "not allowed"),
            (["wait"], "readiness option"),
            (["wait", "--output", "ready"], "--output"),
            (["wait", "--notify"], "--notify"),
        ],
    )
    def test_one_line_and_status_2(self, args: list[str], mentions: str) -> None:
        """The error is a single line naming the problem."""
        finished = run_cli(*args)
        assert finished.returncode == 2
        assert len(lines(finished.stderr)) == 1, finished.stderr
        assert mentions in finished.stderr


class TestHelp:
    """--help documents every option and the exit statuses."""

    @pytest.mark.parametrize("action", ["run", "wait"])
    def test_help_lists_exit_statuses(self, action: str) -> None:
        """Each sub-command's help ends with the table of exit statuses."""
        finished = run_cli(action, "--help")
        assert finished.returncode == 0
        assert "exit status:" in finished.stdout
        assert "not ready within --timeout" in finished.stdout


class TestTcpAddress:
    """--tcp takes HOST:PORT, or dockerize's tcp://HOST:PORT; anything else is refused at once."""

    @pytest.mark.parametrize(
        ("address", "mentions"),
        [
            ("tcp://127.0.0.1", "port is missing"),
            ("127.0.0.1:", "port is missing"),
            ("http://127.0.0.1:8080", "tcp://HOST:PORT"),
            ("tcp://http://127.0.0.1:8080", "tcp://HOST:PORT"),
            ("tcp://127.0.0.1:8080/health", "tcp://HOST:PORT"),
            ("127.0.0.1:0", "1 to 65535"),
            ("127.0.0.1:http", "1 to 65535"),
            ("127.0.0.1:+80", "1 to 65535"),
            ("::1:8080", "in brackets"),
            ("my host:8080", "bad host"),
        ],
    )
    def test_malformed_is_status_2(self, address: str, mentions: str) -> None:
        """A malformed address is one line naming it, exit status 2, without waiting."""
        # --timeout bounds the wait should the address be taken for a host to wait for.
        finished = run_cli("wait", "--tcp", address, "--timeout", "5")
        assert finished.returncode == 2, finished.stderr
        assert len(lines(finished.stderr)) == 1, finished.stderr
        assert "--tcp: expects HOST:PORT" in finished.stderr
        assert repr(address) in finished.stderr
        assert mentions in finished.stderr


#: Options that made long lines: a long message, a long value, the longest option names.
LONG_MISTAKES = [
    ["wait", "--output", "READY"],
    ["wait", "--notify"],
    ["run", "--bogus-option-with-a-long-name", "--another-one", "--", "true"],
    ["run", "--http", "ftp://example.invalid/a/long/path/to/nowhere/at/all", "--", "true"],
    ["run", "--status", "(", "--http", "http://x/", "--", "true"],
    ["run", "--unix-socket", "", "--", "true"],
    ["wait", "--tcp", "http://127.0.0.1:8080"],
    ["run", "--json", "--quiet", "--", "true"],
]


class TestEightyColumns:
    """In an 80-column terminal (COLUMNS=80) nothing we print is wider."""

    @pytest.mark.parametrize("action", [[], ["run"], ["wait"]], ids=["top", "run", "wait"])
    def test_help(self, action: list[str]) -> None:
        """Every line of --help, the exit-status table included, fits."""
        finished = run_cli(*action, "--help", env={"COLUMNS": "80"})
        assert finished.returncode == 0
        assert [line for line in finished.stdout.splitlines() if len(line) > 80] == []

    @pytest.mark.parametrize("args", LONG_MISTAKES, ids=lambda args: " ".join(args)[:40])
    def test_errors(self, args: list[str]) -> None:
        """A bad option's message is wrapped to fit, words unbroken."""
        finished = run_cli(*args, env={"COLUMNS": "80"})
        assert finished.returncode == 2
        assert [line for line in finished.stderr.splitlines() if len(line) > 80] == []

    def test_errors_stay_one_line_without_a_width(self) -> None:
        """Not a terminal and no COLUMNS (a CI log): one line, easy to search."""
        finished = run_cli("wait", "--output", "READY")
        assert len(lines(finished.stderr)) == 1
        assert len(finished.stderr) > 80


def _statuses(help_text: str) -> list[str]:
    """The statuses in the exit-status table of a --help text."""
    table = help_text.split("exit status", 1)[1].splitlines()[1:]
    return [row.split()[0] for row in table if row.startswith("  ") and row.split()[0][0].isdigit()]


class TestExitStatusTables:
    """Each command's --help lists the statuses it can return, and only those."""

    def test_wait(self) -> None:
        """wait never starts a service: no 4, 5 or 6."""
        finished = run_cli("wait", "--help")
        assert _statuses(finished.stdout) == ["0", "2", "3", "128+N"]
        assert "COMMAND" in finished.stdout.split("exit status", 1)[1]

    def test_run(self) -> None:
        """run can return every status."""
        finished = run_cli("run", "--help")
        assert _statuses(finished.stdout) == ["0", "2", "3", "4", "5", "6", "128+N"]
