"""Every public module imports on its own, first, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = [
    "mirakuru",
    "mirakuru.base",
    "mirakuru.executor",
    "mirakuru.output",
    "mirakuru.tcp",
    "mirakuru.http",
    "mirakuru.pid",
    "mirakuru.unixsocket",
    "mirakuru.exceptions",
    "mirakuru.probes",
    "mirakuru.group",
    "mirakuru.compat",
    "mirakuru.base_env",
    "mirakuru.pytest_plugin",
    "mirakuru.cli",
]


@pytest.mark.parametrize("module", MODULES)
def test_imports_first(module: str) -> None:
    """Importing ``module`` before anything else works, and Executor has one identity."""
    check = (
        f"import {module}\n"
        "import mirakuru, mirakuru.base, mirakuru.executor\n"
        "assert mirakuru.Executor is mirakuru.base.Executor is mirakuru.executor.Executor\n"
        "assert mirakuru.base.Executor.__module__ == 'mirakuru.base'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_star_import_of_base_gives_executor() -> None:
    """``from mirakuru.base import *`` still brings Executor, which base supplies on demand."""
    check = (
        "from mirakuru.base import *\n"
        "assert Executor.__mro__[1] is SimpleExecutor\n"
        "import mirakuru.base\n"
        "assert 'Executor' in dir(mirakuru.base)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
