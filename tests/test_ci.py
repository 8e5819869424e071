"""CI runs README.md's whole-test-suite command exactly as written, before anything else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def readme_suite_command() -> str:
    """The one command in the shell block that follows README's "Whole test suite." line."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"^Whole test suite\..*?\n```sh\n(.*?)\n```", readme, re.M | re.S)
    assert found is not None, "README.md has no 'Whole test suite.' paragraph with a sh block"
    lines = found.group(1).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _commands(script: str) -> list[str]:
    """The script's lines that do something (no comments, no blank lines), stripped."""
    stripped = (line.strip() for line in script.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


class TestReadmeCommandInCi:
    """The command README.md gives a newcomer is the one CI proves on a fresh machine."""

    def test_verbatim(self) -> None:
        """.ci/run has README's line as one of its own, character for character."""
        assert readme_suite_command() in _commands(CI.read_text())

    def test_first_to_install(self) -> None:
        """Nothing installs Python packages or makes an environment before it (apt may)."""
        commands = _commands(CI.read_text())
        before = commands[: commands.index(readme_suite_command())]
        assert [line for line in before if re.search(r"\b(pip|python3?|venv)\b", line)] == []

    def test_it_runs_and_stops_ci_on_failure(self) -> None:
        """Its function is called as a plain command under `set -e`, so a failure ends CI."""
        commands = _commands(CI.read_text())
        assert "set -euo pipefail" in commands
        at = commands.index(readme_suite_command())
        assert re.fullmatch(r"(\w+)\(\) \{", commands[at - 1])
        name = commands[at - 1].split("(")[0]
        assert commands[at + 1 :][:2] == ["}", name]

    def test_test_extra_carries_what_the_suite_needs(self) -> None:
        """The suite builds Sphinx pages (tests/docs): the test extra installs Sphinx."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        test_extra = project["optional-dependencies"]["test"]
        assert any(re.match(r"sphinx\b", requirement, re.I) for requirement in test_extra)
