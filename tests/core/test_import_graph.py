"""The package's import graph, built from the source: no circles, no arrow that climbs a layer.

Only imports that run when a module is imported count: those at module level and in class
bodies. Imports inside functions run later (deliberately: late binding, optional
dependencies) and ``if TYPE_CHECKING:`` blocks never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mirakuru"

#: Inside the adapter: which subsystem may import which (the top level is ``adapter``).
ADAPTER_ARROWS = {
    "adapter": set(),
    "spawn": {"adapter"},
    "run": {"adapter", "spawn"},
    "readiness": {"adapter", "spawn", "run"},
    "teardown": {"adapter", "spawn", "run"},
    "guard": {"adapter", "spawn"},
    "aio": {"adapter", "spawn", "run", "readiness", "teardown"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run on import: not in functions, not under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.If) and _type_checking(child):
            for statement in child.orelse:
                yield from _import_time_statements(ast.Module(body=[statement], type_ignores=[]))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        else:
            yield from _import_time_statements(child)


def imports_of(module: str) -> set[str]:
    """The package's modules that importing ``module`` imports directly."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for statement in _import_time_statements(ast.parse(path.read_text())):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            source = statement.module or ""
            if statement.level:
                base = package.split(".")[: len(package.split(".")) - statement.level + 1]
                source = ".".join([*base, source] if source else base)
            for alias in statement.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in MODULES else source)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("core", "adapter"):
        return parts[1]
    return "facade"


def _subsystem(module: str) -> str:
    """``spawn`` for mirakuru.adapter.spawn.process; ``adapter`` for the top level."""
    parts = module.split(".")
    if len(parts) > 3 or (len(parts) == 3 and (PACKAGE / "adapter" / parts[2]).is_dir()):
        return parts[2]
    return "adapter"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class TestGraphBuilder:
    """The graph is read the way Python runs the imports."""

    def test_type_checking_imports_do_not_count(self) -> None:
        """``mirakuru.base`` names Executor for type checkers only: no arrow to executor."""
        assert "mirakuru.executor" not in GRAPH["mirakuru.base"]
        assert "mirakuru.base" in GRAPH["mirakuru.executor"]

    def test_submodule_imports_point_at_the_module(self) -> None:
        """``from mirakuru.adapter.spawn import cgroup`` is an arrow to that module."""
        assert "mirakuru.adapter.spawn.cgroup" in GRAPH["mirakuru.adapter.spawn.process"]

    def test_a_circle_is_found(self) -> None:
        """The circle finder reports a two-module and a three-module circle."""
        graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
        assert circles(graph) == [["a", "b"], ["c", "d", "e"]]


class TestNoCircles:
    """No module imports, directly or through others, a module that imports it."""

    def test_modules(self) -> None:
        """The package's modules form no import circle."""
        assert circles(GRAPH) == []

    def test_adapter_subsystems(self) -> None:
        """The adapter's subsystems (spawn, run, readiness, ...) form no circle either."""
        graph: dict[str, set[str]] = {}
        for module, targets in GRAPH.items():
            if _layer(module) != "adapter":
                continue
            for target in targets:
                if _layer(target) == "adapter" and _subsystem(target) != _subsystem(module):
                    graph.setdefault(_subsystem(module), set()).add(_subsystem(target))
        assert circles(graph) == []


class TestLayers:
    """Arrows point down only: facade -> adapter -> core."""

    @pytest.mark.parametrize("module", [m for m in MODULES if _layer(m) == "core"])
    def test_core_imports_only_core(self, module: str) -> None:
        """A core module imports nothing from the adapter or the facade."""
        assert {_layer(target) for target in GRAPH[module]} <= {"core"}

    @pytest.mark.parametrize("module", [m for m in MODULES if _layer(m) == "adapter"])
    def test_adapter_never_imports_the_facade(self, module: str) -> None:
        """An adapter module imports only the adapter and the core."""
        assert {_layer(target) for target in GRAPH[module]} <= {"adapter", "core"}

    @pytest.mark.parametrize("module", [m for m in MODULES if _layer(m) == "adapter"])
    def test_adapter_subsystem_arrows(self, module: str) -> None:
        """Each adapter subsystem imports only the subsystems below it."""
        allowed = ADAPTER_ARROWS[_subsystem(module)] | {_subsystem(module)}
        targets = {_subsystem(t) for t in GRAPH[module] if _layer(t) == "adapter"}
        assert targets <= allowed

    def test_every_subsystem_is_declared(self) -> None:
        """A new adapter subpackage gets its place in ADAPTER_ARROWS."""
        found = {_subsystem(m) for m in MODULES if _layer(m) == "adapter"}
        assert found == set(ADAPTER_ARROWS)


class TestSize:
    """Modules stay readable, and the adapter's top level stays small."""

    @pytest.mark.parametrize("module", sorted(MODULES))
    def test_no_module_over_450_lines(self, module: str) -> None:
        """No module is longer than 450 lines."""
        assert len(MODULES[module].read_text().splitlines()) <= 450

    def test_adapter_top_level(self) -> None:
        """At most 10 modules sit directly in mirakuru/adapter/."""
        assert len(list((PACKAGE / "adapter").glob("*.py"))) <= 10
