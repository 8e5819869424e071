"""``.. command-output:: ARGS`` shows what ``python -m ARGS`` prints, run at build time.

Used for the command line's ``--help`` texts, so the reference page always matches the
program instead of a copy pasted into the docs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

#: Where the docs live; the repository root is one level up.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CommandOutput(SphinxDirective):
    """Run ``python -m <arguments>`` and show the command line with its standard output."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        """A literal block: the prompt line, then the output."""
        arguments = shlex.split(self.arguments[0])
        result = subprocess.run(
            [sys.executable, "-m", *arguments],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": _REPO, "COLUMNS": "88"},
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise self.error(f"python -m {self.arguments[0]} failed: {result.stderr.strip()}")
        text = f"$ {shlex.join(arguments)}\n{result.stdout.rstrip()}"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the directive."""
    app.add_directive("command-output", CommandOutput)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
