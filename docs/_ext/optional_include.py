"""``.. optional-markdown:: FILE`` includes a generated Markdown file, or says it is absent.

The benchmark report is written by ``python -m benchmarks`` and may not exist in a fresh
checkout; the docs must still build (with warnings as errors) without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.misc import Include
from sphinx.application import Sphinx
from sphinx.util.typing import ExtensionMetadata


class OptionalMarkdown(Include):
    """Include a Markdown file through MyST when it exists; otherwise a short note."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, object]] = {
        "missing": directives.unchanged,
        "title": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        """The parsed file's content, or a section (``:title:``) with the ``:missing:`` text."""
        source = Path(self.state.document.current_source or "").parent
        path = source / self.arguments[0]
        if not path.is_file():
            message = self.options.get("missing", f"{self.arguments[0]} has not been generated.")
            section = nodes.section(ids=[nodes.make_id(self.options.get("title", "report"))])
            section += nodes.title(text=self.options.get("title", "Report"))
            section += nodes.note("", nodes.paragraph(message, message))
            return [section]
        self.state.document.settings.record_dependencies.add(str(path))
        self.options = {"parser": directives.parser_name("myst_parser.sphinx_")}
        return super().run()


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the directive."""
    app.add_directive("optional-markdown", OptionalMarkdown)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
