"""The docs build flags examples a reader could not run as shown in a fresh file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2] / "docs" / "_ext"
CONF = f"""
import sys
sys.path.insert(0, {str(EXT)!r})
extensions = ["sphinx.ext.doctest", "example_imports"]
"""


def _warnings(tmp_path: Path, page: str) -> str:
    (tmp_path / "conf.py").write_text(CONF)
    (tmp_path / "index.rst").write_text("Page\n====\n\n" + page)
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "dummy", str(tmp_path), str(tmp_path / "_b")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # A build that could not run (no Sphinx, a broken extension) must fail here, not pass
    # every "no complaint" case for want of output.
    assert build.returncode == 0, build.stderr
    return build.stderr


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        (".. code-block:: python\n\n   import requests\n", "imports 'requests'"),
        (".. testcode::\n\n   print(free_port())\n", "uses 'free_port'"),
        (".. testcode::\n\n   print(PYTHON)\n", "uses 'PYTHON'"),
        (">>> import yaml\n", "imports 'yaml'"),
    ],
)
def test_flags_what_a_reader_lacks(tmp_path: Path, page: str, complaint: str) -> None:
    """A third-party import the page does not name, or a harness name, is a warning."""
    assert complaint in _warnings(tmp_path, page)


@pytest.mark.parametrize(
    "page",
    [
        ".. testcode::\n\n   from mirakuru.ports import free_port\n\n   print(free_port())\n",
        "Uses requests.\n\n.. code-block:: python\n\n   import requests\n",
        ".. testsetup::\n\n   PYTHON = 1\n\n.. testcode::\n   :hide:\n\n   print(PYTHON)\n",
    ],
    ids=["imports-everything", "page-names-the-package", "hidden-harness"],
)
def test_accepts_runnable_examples(tmp_path: Path, page: str) -> None:
    """Stdlib, mirakuru, named packages and hidden blocks pass."""
    assert "example" not in _warnings(tmp_path, page)
