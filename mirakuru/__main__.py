"""``python -m mirakuru``: the same as the ``mirakuru`` command."""

from __future__ import annotations

import sys

from mirakuru.cli import main

if __name__ == "__main__":
    sys.exit(main())
