"""Check that every Python example a reader sees runs as shown in a fresh file.

A rendered example (``code-block:: python``, ``testcode``, ``doctest``) may import only the
standard library, mirakuru, and packages the page names in its prose; and it may not use the
build's hidden harness (``free_port()``, ``PYTHON``...) unless the page itself defines or
imports that name first. Hidden blocks (``testsetup``, ``testcleanup``, ``:hide:``) are not
rendered and are not checked. Violations are build warnings, errors under ``-W``.
"""

from __future__ import annotations

import ast
import re
import sys
from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.util import logging

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import ExtensionMetadata

logger = logging.getLogger(__name__)

#: Names ``doctest_global_setup`` provides, which a copied example would not have.
HARNESS = frozenset(
    {
        "CI",
        "PYTHON",
        "REPO",
        "free_port",
        "leaked_processes",
        "os",
        "sys",
        "tempfile",
        "postgres_bin",
        "postgres_bin_dir",
        "run_pytest",
        "scratch_dir",
        "shell",
        "skip_unless_installed",
        "wait_until_gone",
    }
)
_WORD = re.compile(r"[A-Za-z_][\w.-]*")


def _rendered_python(doctree: nodes.document) -> list[nodes.Element]:
    blocks: list[nodes.Element] = list(doctree.findall(nodes.doctest_block))
    for block in doctree.findall(nodes.literal_block):
        kind = block.get("testnodetype")
        language = block.get("language")
        if kind in ("testcode", "doctest") or (kind is None and language in ("python", "pycon")):
            blocks.append(block)
    return blocks


def _source(block: nodes.Element) -> str:
    text: str = block.astext()
    if (
        isinstance(block, nodes.doctest_block)
        or block.get("testnodetype") == "doctest"
        or block.get("language") == "pycon"
        or text.lstrip().startswith(">>>")
    ):
        kept = [
            line[4:]
            for line in text.splitlines()
            if line.startswith((">>> ", "... ", ">>>", "..."))
        ]
        text = "\n".join(kept)
    return text


def _prose_words(doctree: nodes.document) -> set[str]:
    words: set[str] = set()
    for text in doctree.findall(nodes.Text):
        if not isinstance(text.parent, nodes.literal_block | nodes.doctest_block):
            found = _WORD.findall(str(text))
            words.update(word.rstrip(".").lower().replace("-", "_") for word in found)
    return words


def _defined(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _imported_roots(tree: ast.AST) -> list[str]:
    roots: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.append(node.module.split(".")[0])
    return roots


def check_page(app: Sphinx, doctree: nodes.document) -> None:
    """Warn about every rendered example on this page that a reader could not run as shown."""
    docname = app.env.docname
    exempt = docname in app.config.example_harness_exempt
    allowed = set(sys.stdlib_module_names) | {"mirakuru"} | _prose_words(doctree)
    defined: set[str] = set()
    for block in _rendered_python(doctree):
        try:
            tree = ast.parse(_source(block))
        except SyntaxError:
            continue  # a fragment (e.g. a signature): nothing to import
        for root in _imported_roots(tree):
            if root.lower() not in allowed:
                logger.warning(
                    "example imports %r, which is neither the standard library, mirakuru, "
                    "nor a package this page names",
                    root,
                    location=block,
                )
        defined |= _defined(tree)
        if exempt:
            continue
        used = {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        for name in sorted((used & HARNESS) - defined):
            logger.warning(
                "example uses %r from the docs build's harness: a reader's copy would fail "
                "(import it or define it in the example, or hide the harness in testsetup)",
                name,
                location=block,
            )


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the check."""
    app.add_config_value("example_harness_exempt", [], "env")
    app.connect("doctree-read", check_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
