"""Fail the docs build when a public name of the library is missing from the API reference.

Every name in the ``__all__`` of each module listed in ``api_coverage_modules`` must be
documented (under that module, or, for a re-export, wherever the same object is
documented), and every public method or property of a documented class needs a
docstring. Missing ones are warnings, which ``sphinx -W`` turns into errors, so the
reference cannot silently fall behind the code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

LOG = logging.getLogger(__name__)


def resolve(fullname: str) -> Any:
    """The object a dotted name stands for (the longest importable prefix, then attributes)."""
    parts = fullname.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(fullname)


def _documented(env: BuildEnvironment) -> dict[str, Any]:
    """Every documented Python object, by full name."""
    objects: dict[str, Any] = {}
    for fullname in env.get_domain("py").objects:
        try:
            objects[fullname] = resolve(fullname)
        except (ImportError, AttributeError):
            continue
    return objects


def _is_own(module: str, obj: Any) -> bool:
    """Whether ``obj`` belongs to this library (re-exports of the stdlib are not ours)."""
    home = getattr(obj, "__module__", None) or module
    return str(home).split(".")[0] == module.split(".", maxsplit=1)[0]


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties a class defines itself."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if isinstance(function, classmethod | staticmethod):
            function = function.__func__
        if inspect.isfunction(function):
            yield name, function


def missing(env: BuildEnvironment, modules: list[str]) -> list[str]:
    """Human-readable descriptions of every public name the reference lacks."""
    documented = _documented(env)
    identities = {id(obj) for obj in documented.values()}
    problems: list[str] = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            fullname = f"{module_name}.{name}"
            if not _is_own(module_name, obj):
                continue
            if fullname not in documented and id(obj) not in identities:
                problems.append(f"{fullname} is public but not in the API reference")
                continue
            if inspect.isclass(obj):
                for member, function in _public_members(obj):
                    if not inspect.getdoc(function):
                        problems.append(f"{fullname}.{member} has no docstring")
    return sorted(set(problems))


def check(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about every public name that is not documented."""
    for problem in missing(env, list(app.config.api_coverage_modules)):
        LOG.warning(problem, type="api-coverage", subtype="missing")


def _summary(obj: Any) -> str:
    """The first sentence-line of an object's docstring."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _reference(name: str, obj: Any) -> str:
    """A reST cross-reference to where ``obj`` is documented."""
    if inspect.ismodule(obj):
        return f":py:mod:`{obj.__name__}`"
    home = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", name)
    return f":py:obj:`{name} <{home}.{qualname}>`"


class PackageExports(SphinxDirective):
    """``.. package-exports:: MODULE`` tables the names of ``__all__``, linked to their docs."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """A two-column table: each exported name and the first line of its docstring."""
        module = importlib.import_module(self.arguments[0])
        lines = [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - what it is"]
        for name in module.__all__:
            obj = getattr(module, name)
            lines += [f"   * - {_reference(name, obj)}", f"     - {_summary(obj)}"]
        return self.parse_text_to_nodes("\n".join(lines))


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the check, its configuration value and the exports table."""
    app.add_config_value("api_coverage_modules", [], "env", types=[list])
    app.add_directive("package-exports", PackageExports)
    app.connect("env-check-consistency", check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
