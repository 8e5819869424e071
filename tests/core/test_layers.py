"""The layering the design promises: a pure core, an adapter below the facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mirakuru"
#: Modules whose use would make the core effectful (processes, sockets, clocks, threads).
EFFECTFUL = {"subprocess", "socket", "select", "selectors", "threading", "signal", "time"}
#: ``os`` functions that act on processes.
PROCESS_CALLS = {"kill", "killpg", "fork", "waitpid", "waitid", "system", "popen", "getpid"}
FACADE = {
    "mirakuru.base",
    "mirakuru.output",
    "mirakuru.tcp",
    "mirakuru.http",
    "mirakuru.pid",
    "mirakuru.unixsocket",
    "mirakuru.exceptions",
    "mirakuru._executor",
    "mirakuru._attributes",
    "mirakuru._teardown",
    "mirakuru.executor",
    "mirakuru.pytest_plugin",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


class TestCore:
    """The core does no I/O and depends on nothing else in the package."""

    @pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
    def test_no_effectful_imports(self, path: Path) -> None:
        """No core module imports subprocess, socket, select, threading, signal or time."""
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & EFFECTFUL

    @pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
    def test_only_core_from_the_package(self, path: Path) -> None:
        """Core modules import only other core modules of the package."""
        ours = {name for name in _imports(path) if name.startswith("mirakuru")}
        assert all(name.startswith("mirakuru.core") for name in ours)

    @pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
    def test_no_process_calls(self, path: Path) -> None:
        """No core module calls into os for processes."""
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert not (node.value.id == "os" and node.attr in PROCESS_CALLS), node.attr


class TestAdapter:
    """The adapter sits below the facade: it never imports the public classes."""

    @pytest.mark.parametrize("path", _modules("adapter"), ids=lambda p: p.name)
    def test_no_facade_imports(self, path: Path) -> None:
        """No adapter module imports a facade module."""
        assert not _imports(path) & FACADE
