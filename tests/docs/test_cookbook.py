"""The cookbook's recipes, run as a reader would copy them, on machines unlike ours."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def recipe(page: str) -> str:
    """The code of the first ``testcode`` block of ``docs/<page>``, as a reader copies it."""
    text = (DOCS / page).read_text()
    block = text.split(".. testcode::\n", 1)[1]
    body: list[str] = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith(" "):
            break  # the block ends at the first unindented line
        if not line.strip().startswith(":") or body:
            body.append(line)
    return textwrap.dedent("\n".join(body))


def run_python(
    code: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (this one) with ``env``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


class TestWsgi:
    """The WSGI recipe needs gunicorn; when it is missing, the error says so."""

    def test_missing_gunicorn_is_named(self, tmp_path: Path) -> None:
        """Without gunicorn, start() fails with gunicorn's own 'No module named' line."""
        # A gunicorn that fails to import the way a missing one does, ahead of the real one.
        (tmp_path / "gunicorn.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'gunicorn'\", name='gunicorn')\n"
        )
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "TMPDIR": str(tmp_path)}
        result = run_python(recipe("cookbook/wsgi.rst"), env)
        assert result.returncode != 0
        assert "exited" in result.stderr, result.stderr
        assert "No module named 'gunicorn'" in result.stderr, result.stderr


def _can_hide_directories() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


@pytest.fixture
def postgres_on_path_only() -> Iterator[str]:
    """A shell prefix that runs a command where PostgreSQL is on PATH only.

    In a private mount namespace, /usr/lib/postgresql is hidden under an empty tmpfs and
    its newest version (bin/ and the lib/ the server loads from beside it) is bind-mounted
    elsewhere, its bin/ put on PATH.
    """
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not versions:
        pytest.skip("PostgreSQL is not installed where Debian puts it")
    # Not under pytest's private (0700) temporary root: the 'postgres' account must reach it.
    root = tempfile.mkdtemp(prefix="mirakuru-pgpath-")
    os.chmod(root, 0o755)  # noqa: S103 - other accounts must traverse, not write
    try:
        os.mkdir(os.path.join(root, "pg"))
        os.mkdir(os.path.join(root, "tmp"), 0o777)
        os.chmod(os.path.join(root, "tmp"), 0o1777)  # noqa: S103 - a scratch TMPDIR, like /tmp
        yield (
            f"mount --bind {os.path.dirname(versions[-1])} {root}/pg && "
            "mount -t tmpfs none /usr/lib/postgresql && "
            f'PATH={root}/pg/bin:/usr/bin:/bin TMPDIR={root}/tmp exec "$@"'
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


class TestPostgresql:
    """The PostgreSQL recipe works where the programs are on PATH, not in Debian's place."""

    @pytest.mark.skipif(
        not _can_hide_directories(),
        reason="hiding /usr/lib/postgresql needs a private mount namespace (root, unshare)",
    )
    def test_programs_on_path_only(self, postgres_on_path_only: str) -> None:
        """Without /usr/lib/postgresql/*/bin, the recipe finds initdb and postgres on PATH."""
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                postgres_on_path_only,
                "sh",
                sys.executable,
                "-c",
                recipe("cookbook/postgresql.rst"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert "IndexError" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["42", "stopping -> stopped on finish (exit code 0)"]


class TestPlatformClaims:
    """Every page that says where mirakuru runs agrees with the platforms page."""

    def test_migrating_names_the_platforms(self) -> None:
        """The migration guide's Platform entry names what platforms.rst names."""
        platforms = (DOCS / "platforms.rst").read_text().split("\n\n", 2)[1]
        named = [name for name in ("Linux", "macOS", "BSD") if name in platforms]
        assert named == ["Linux", "macOS", "BSD"]
        migrating = (DOCS / "migrating.rst").read_text()
        entry = re.search(r"^Platform\n((?:   .*\n)+)", migrating, re.MULTILINE)
        assert entry is not None
        assert [name for name in named if name not in entry.group(1)] == []
