"""Finding processes by an environment variable, at its published import path."""

from __future__ import annotations

from mirakuru.adapter.teardown.tree import processes_with_env

__all__ = ["processes_with_env"]
