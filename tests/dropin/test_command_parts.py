"""Commands take path parts, as subprocess does."""

from __future__ import annotations

import sys
from pathlib import Path

from mirakuru import SimpleExecutor
from mirakuru.core.command import normalize_command


def test_path_parts_run(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import sys; sys.exit(0)\n")
    executor = SimpleExecutor([sys.executable, script], timeout=10)
    assert executor.command_parts == [sys.executable, str(script)]
    with executor:
        assert executor.process is not None
        assert executor.process.wait(timeout=10) == 0


def test_str_parts_are_kept_as_given() -> None:
    parts = ("redis-server", "--port", "0")
    assert normalize_command(parts).parts is parts
