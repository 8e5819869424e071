"""The published constructor: argument order, defaults, old spellings, command forms."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from typing import Any

import pytest

from mirakuru import Executor, SimpleExecutor
from mirakuru.base import ENV_UUID
from tests.helpers import python_command

executor_classes = pytest.mark.parametrize("cls", [SimpleExecutor, Executor])


class TestPositionalOrder:
    """Every argument can be passed positionally, in the published order."""

    @executor_classes
    def test_all_positional(self, cls: type[SimpleExecutor], tmp_path: Any) -> None:
        """The thirteen arguments land where the published order puts them."""
        executor = cls(
            "sleep 1",
            str(tmp_path),
            True,
            5,
            0.5,
            signal.SIGINT,
            signal.SIGQUIT,
            3,
            {"EXTRA": "1"},
            None,
            subprocess.DEVNULL,
            subprocess.PIPE,
            {"close_fds": True},
        )
        kwargs = executor._popen_kwargs
        assert executor.cwd == str(tmp_path)
        assert executor._shell is True
        assert executor._timeout == 5
        assert executor._sleep == 0.5
        assert executor._stop_signal == signal.SIGINT
        assert executor._kill_signal == signal.SIGQUIT
        assert executor._expected_returncode == 3
        assert executor._envvars == {"EXTRA": "1"}
        assert (kwargs["stdin"], kwargs["stdout"], kwargs["stderr"]) == (
            None,
            subprocess.DEVNULL,
            subprocess.PIPE,
        )
        assert kwargs["close_fds"] is True
        assert kwargs["cwd"] == str(tmp_path)
        assert kwargs["shell"] is True


class TestDefaults:
    """What an executor does when told nothing."""

    @executor_classes
    def test_defaults(self, cls: type[SimpleExecutor]) -> None:
        """An hour to start, 0.1 s sleep, SIGTERM then SIGKILL, pipes for stdin and stdout."""
        executor = cls("sleep 1")
        kwargs = executor._popen_kwargs
        assert executor._timeout == 3600
        assert executor._sleep == 0.1
        assert executor._stop_signal == signal.SIGTERM
        assert executor._kill_signal == signal.SIGKILL
        assert executor._expected_returncode is None
        assert executor._envvars == {}
        assert executor._shell is False
        assert executor.cwd is None
        assert (kwargs["stdin"], kwargs["stdout"], kwargs["stderr"]) == (
            subprocess.PIPE,
            subprocess.PIPE,
            None,
        )
        assert kwargs["universal_newlines"] is True
        assert executor.process is None
        assert executor.stop_timeout == 3600

    def test_timeout_none(self) -> None:
        """``timeout=None`` is accepted and means no deadline (nor stop grace limit)."""
        executor = SimpleExecutor("sleep 1", timeout=None)
        assert executor._timeout is None
        assert executor.stop_timeout is None

    def test_stop_timeout_is_separate(self) -> None:
        """A stop grace period can be set apart from the start timeout."""
        executor = SimpleExecutor("sleep 1", timeout=30, stop_timeout=2)
        assert (executor._timeout, executor.stop_timeout) == (30, 2)


class TestOldSpellings:
    """The 1.x/2.x keyword names keep working."""

    def test_sig_stop_and_sig_kill(self) -> None:
        """``sig_stop`` and ``sig_kill`` set the stop and kill signals, readable by both names."""
        executor = SimpleExecutor("sleep 1", sig_stop=signal.SIGINT, sig_kill=signal.SIGTERM)
        assert executor._stop_signal == executor._sig_stop == signal.SIGINT
        assert executor._kill_signal == executor._sig_kill == signal.SIGTERM

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
    def test_exp_sig(self, sig: int) -> None:
        """``exp_sig=N`` expects return code ``-N``, what a process killed by N reports."""
        assert SimpleExecutor("sleep 1", exp_sig=sig)._expected_returncode == -sig


class TestCommandForms:
    """A command given as a string, a list or a tuple."""

    @pytest.mark.parametrize(
        ("command", "parts"),
        [
            ("sleep 1", ["sleep", "1"]),
            ("echo 'a b' c", ["echo", "a b", "c"]),
            ('python -c "print(1)"', ["python", "-c", "print(1)"]),
        ],
    )
    def test_string(self, command: str, parts: list[str]) -> None:
        """A string is kept as ``command`` and split into ``command_parts``."""
        executor = SimpleExecutor(command)
        assert executor.command == command
        assert executor.command_parts == parts

    @pytest.mark.parametrize(
        "parts", [["echo", "a b", "c"], ("echo", "it's"), ["sleep", "1"], ("true",)]
    )
    def test_sequence(self, parts: list[str] | tuple[str, ...]) -> None:
        """A sequence is kept as ``command_parts``; ``command`` is its shell-quoted join."""
        executor = SimpleExecutor(parts)
        assert executor.command_parts == parts
        assert executor.command == " ".join(shlex.quote(part) for part in parts)
        assert shlex.split(executor.command) == list(parts)

    @executor_classes
    @pytest.mark.parametrize("command", ["", [], ()])
    def test_empty_is_accepted(self, cls: type[SimpleExecutor], command: Any) -> None:
        """An executor that will never be started may have an empty command."""
        executor = cls(command)
        assert not executor.command_parts
        assert not executor.running()


class TestSubclassAttributes:
    """Subclasses that set attributes before calling ``super().__init__``."""

    def test_attributes_survive(self) -> None:
        """The constructor never wipes attributes it does not own."""

        class Service(Executor):
            def __init__(self) -> None:
                self.port = 1234
                self.custom = "kept"
                super().__init__("sleep 1")

            def after_start_check(self) -> bool:
                return True

        service = Service()
        assert (service.port, service.custom) == (1234, "kept")

    def test_no_slots(self) -> None:
        """Executors take arbitrary attributes, as user code expects."""
        executor = SimpleExecutor("sleep 1")
        executor.anything = 1  # type: ignore[attr-defined]
        assert executor.anything == 1  # type: ignore[attr-defined]


class TestEnvironment:
    """The child's environment as the executor describes it before starting."""

    def test_envvars(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``envvars`` is our environment, the extras, and this executor's marker."""
        monkeypatch.setenv("FROM_PARENT", "yes")
        executor = SimpleExecutor("sleep 1", envvars={"EXTRA": "1", "FROM_PARENT": "no"})
        environment = executor.envvars
        assert environment["EXTRA"] == "1"
        assert environment["FROM_PARENT"] == "no"
        assert environment[ENV_UUID] == executor._uuid
        for key in os.environ.keys() - {"FROM_PARENT", ENV_UUID}:
            assert environment[key] == os.environ[key]

    def test_popen_env_is_complete(self) -> None:
        """``_popen_kwargs["env"]`` is the full environment the child gets."""
        executor = SimpleExecutor("sleep 1", envvars={"EXTRA": "1"})
        assert executor._popen_kwargs["env"] == executor.envvars

    def test_child_sees_it(self, tmp_path: Any) -> None:
        """The child runs in ``cwd`` with the extras and the marker in its environment."""
        script = "import os; print(os.getcwd(), os.environ['EXTRA'], os.environ['mirakuru_uuid'])"
        executor = SimpleExecutor(
            python_command(script), cwd=str(tmp_path), envvars={"EXTRA": "1"}
        ).start()
        out = executor.output()
        assert out is not None
        assert out.readline().split() == [str(tmp_path), "1", executor._uuid]
        executor.stop()

    def test_marker_token(self) -> None:
        """The marker token is ``<our pid>:<unique id>``, different for every executor."""
        first, second = SimpleExecutor("sleep 1"), SimpleExecutor("sleep 1")
        assert first._uuid.startswith(f"{os.getpid()}:")
        assert first._uuid != second._uuid
