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
