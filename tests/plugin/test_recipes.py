"""The documented example projects pass when run as a reader would run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _run(project: str, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    copy = shutil.copytree(EXAMPLES / project, tmp_path / project)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, str(copy)],
        capture_output=True,
        text=True,
        cwd=copy,
        timeout=180,
        check=False,
    )


def test_shared_recipe_with_four_workers(tmp_path: Path) -> None:
    """``pytest -n 4`` on the shared-service example passes."""
    result = _run("pytest_shared", tmp_path, "-n", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.skipif(
    os.geteuid() == 0, reason="PostgreSQL refuses to run as root; the recipe is for normal users"
)
@pytest.mark.skipif(shutil.which("initdb") is None, reason="PostgreSQL is not installed")
def test_postgresql_recipe(tmp_path: Path) -> None:
    """The PostgreSQL example (initdb as a fixture) passes."""
    result = _run("pytest_postgresql", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
