"""Spawn failures keep the OS error classes the published package let through."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from mirakuru import SimpleExecutor, TCPExecutor
from mirakuru.exceptions import (
    ExecutableNotFound,
    ExecutableNotPermitted,
    ExecutorError,
    WorkingDirectoryMissing,
    WorkingDirectoryNotADirectory,
)
from tests.helpers import python_command


def test_program_without_execute_bit_is_a_permission_error(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    executor = SimpleExecutor([str(script)])
    with pytest.raises(PermissionError) as raised:
        executor.start()
    assert isinstance(raised.value, ExecutableNotPermitted)
    assert issubclass(ExecutableNotPermitted, ExecutableNotFound | ExecutorError)
    assert (raised.value.errno, raised.value.filename) == (errno.EACCES, str(script))
    assert executor.process is None


def test_cwd_that_is_a_file_is_a_not_a_directory_error(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    executor = SimpleExecutor(python_command("pass"), cwd=str(file))
    with pytest.raises(NotADirectoryError) as raised:
        executor.start()
    assert isinstance(raised.value, WorkingDirectoryNotADirectory)
    assert raised.value.filename == str(file)
    assert "working directory" in str(raised.value)
    assert executor.process is None


def test_missing_cwd_says_the_working_directory_is_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "nonexistent")
    executor = SimpleExecutor(python_command("pass"), cwd=missing)
    with pytest.raises(FileNotFoundError) as raised:
        executor.start()
    assert isinstance(raised.value, WorkingDirectoryMissing)
    message = str(raised.value)
    assert f"working directory {missing!r} is missing" in message
    assert "cannot start '" not in message
    assert raised.value.filename == missing


@pytest.mark.parametrize("cls", [SimpleExecutor, TCPExecutor])
def test_non_str_environment_value_is_named_by_start(cls: type[SimpleExecutor]) -> None:
    kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": 1} if cls is TCPExecutor else {}
    executor = cls(python_command("pass"), envvars={"A": 1}, **kwargs)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"envvars\['A'\] must be a str, got 1 \(int\)"):
        executor.start()
    assert executor.process is None
