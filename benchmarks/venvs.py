"""The two cached virtual environments the workers run in.

"ours" holds this checkout, installed (not imported from the tree), and is
reinstalled whenever the package sources change; "published" holds the release
from PyPI.  Both also get psutil, which the worker uses to count survivors.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STAMP = "bench-stamp.json"

#: Checkout paths whose content decides whether "ours" must be reinstalled.
SOURCE_PATHS = ("mirakuru", "src", "pyproject.toml", "setup.py", "setup.cfg")

#: Never copied into the build tree: VCS data, caches, build litter, the venvs.
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venvs",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".tox",
    ".nox",
)


class SetupError(Exception):
    """A virtual environment could not be created or populated."""


@dataclass(frozen=True)
class Slot:
    impl: str
    #: A pip requirement, or None for "this checkout".
    requirement: str | None


@dataclass(frozen=True)
class Venv:
    impl: str
    path: Path
    python: Path
    description: str


def tree_hash(root: Path) -> str:
    """Hash of the package sources, so edits trigger a reinstall."""
    digest = hashlib.sha256()
    for name in SOURCE_PATHS:
        top = root / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def locked(venvs_dir: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the venvs for a whole run.

    Another run could otherwise reinstall "ours" under our running workers, and
    two benchmark runs on one machine would skew each other's numbers anyway.
    """
    venvs_dir.mkdir(parents=True, exist_ok=True)
    lock = venvs_dir / ".lock"
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another benchmark run holds {lock}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(
            cmd,
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SetupError(f"`{' '.join(cmd[:4])} ...` failed (log {log}):\n{tail}")


#: Installed next to ours (the published release needs none of them).
OURS_EXTRAS = ("pytest",)


def _pip_install(python: Path, target: str, log: Path, *more: str) -> None:
    # --force-reinstall: a rebuilt checkout usually keeps its version number,
    # and pip would otherwise consider it already installed.
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    cmd += ["--no-input", "--force-reinstall", "psutil", target, *more]
    _run(cmd, log)


def _wanted(slot: Slot, root: Path) -> dict[str, str]:
    if slot.requirement is not None:
        return {"requirement": slot.requirement, "python": sys.version}
    if not (root / "mirakuru").is_dir() and not (root / "src").is_dir():
        raise SetupError(
            f"no mirakuru package in {root}; use --ours-spec to benchmark a "
            "published version in the 'ours' slot"
        )
    return {"checkout": tree_hash(root), "python": sys.version, "with": " ".join(OURS_EXTRAS)}


def ensure(
    slot: Slot, root: Path, venvs_dir: Path, rebuild: bool, say: Callable[[str], None]
) -> Venv:
    """Create or refresh the venv for ``slot``; return how to run it."""
    path = venvs_dir / slot.impl
    python = path / "bin" / "python"
    wanted = _wanted(slot, root)
    stamp = path / STAMP
    label = slot.requirement or f"checkout (sources {wanted['checkout']})"
    current = json.loads(stamp.read_text()) if stamp.exists() else None
    if current == wanted and python.exists() and not rebuild:
        return Venv(slot.impl, path, python, label)

    log = venvs_dir / f"{slot.impl}.log"
    log.write_text("")
    if not python.exists() or (current or {}).get("python") != sys.version:
        say(f"creating venv {path}")
        shutil.rmtree(path, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(path)], log)
    stamp.unlink(missing_ok=True)
    say(f"installing {label} into {path}")
    if slot.requirement is not None:
        _pip_install(python, slot.requirement, log)
    else:
        # Build from a copy: an in-tree build would drop build/ and *.egg-info
        # into a working tree that other people are editing.
        with tempfile.TemporaryDirectory(prefix="mirakuru-bench-src-") as tmp:
            copy = Path(tmp) / "src"
            shutil.copytree(root, copy, ignore=COPY_IGNORE, symlinks=True)
            # With the async extra: the async-* scenarios run ours' astart() on anyio;
            # with pytest: reuse-second-run runs pytest with ours' plugin.
            _pip_install(python, f"{copy}[async]", log, *OURS_EXTRAS)
    stamp.write_text(json.dumps(wanted))
    return Venv(slot.impl, path, python, label)
