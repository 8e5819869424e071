"""Command normalisation and environment composition."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core.command import ENV_MARKER, compose_environment, normalize_command

words = st.lists(st.text(min_size=1, max_size=10), max_size=6)
names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8)
environments = st.dictionaries(names, st.text(max_size=8), max_size=5)


class TestNormalizeCommand:
    """A command given as a string or as a sequence."""

    @given(parts=words)
    def test_sequence_round_trips(self, parts: list[str]) -> None:
        """A sequence is kept as given and displayed as a shell line that splits back to it."""
        command = normalize_command(parts)
        assert command.parts is parts
        assert command.argv == tuple(parts)
        assert shlex.split(command.display) == parts

    @given(parts=words)
    def test_string_is_split(self, parts: list[str]) -> None:
        """A string is kept for display and split like a shell would."""
        line = shlex.join(parts)
        command = normalize_command(line)
        assert command.display == line
        assert list(command.argv) == shlex.split(line)
        assert command.parts == shlex.split(line)

    @pytest.mark.parametrize("command", ["", "   ", [], ()])
    def test_empty_is_accepted(self, command: str | list[str]) -> None:
        """An empty command is accepted here; starting it is what fails."""
        assert normalize_command(command).empty

    @pytest.mark.parametrize("command", [None, 42, b"ls", ["ls", 1]])
    def test_wrong_types(self, command: object) -> None:
        """Anything but text, or a sequence of text, is refused naming the value."""
        with pytest.raises(TypeError, match="command"):
            normalize_command(command)

    def test_unbalanced_quotes(self) -> None:
        """A string that cannot be split is refused with the reason."""
        with pytest.raises(ValueError, match="cannot be parsed"):
            normalize_command("echo 'oops")


class TestComposeEnvironment:
    """The child's environment."""

    @given(base=environments, extra=environments, marker=st.text(min_size=1))
    def test_overlay_and_marker(
        self, base: dict[str, str], extra: dict[str, str], marker: str
    ) -> None:
        """Extras override the base, and the marker is always there and ours."""
        environment = compose_environment(base, extra, marker)
        assert environment[ENV_MARKER] == marker
        for key, value in extra.items():
            assert environment[key] == value
        for key in base.keys() - extra.keys():
            assert environment[key] == base[key]

    @given(marker=st.text(min_size=1))
    def test_marker_wins(self, marker: str) -> None:
        """A marker inherited or passed as an extra never replaces this executor's own."""
        environment = compose_environment({ENV_MARKER: "parent"}, {ENV_MARKER: "extra"}, marker)
        assert environment[ENV_MARKER] == marker
