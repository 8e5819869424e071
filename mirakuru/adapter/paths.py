"""Directories we make in places other users can write to (``/tmp``, a shared basetemp).

Whoever creates a name first in a world-writable directory owns it: another user can plant
a symbolic link or a directory of their own where we expect ours, and make us (perhaps as
root) create, lock or overwrite files where they point. So a directory we need there is
made with mode 0700, and whatever is found under its name is checked before use: a real
directory (not a symlink), ours, and writable by nobody else. A symlink planted by another
user anywhere on the way is refused too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["UnsafeDirectory", "is_private", "private_directory"]


class UnsafeDirectory(PermissionError):
    """A directory we were to use could be controlled by another user."""


def _own_uid() -> int:
    return os.geteuid()


def is_private(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a real directory of ours that no one else may enter or write."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == _own_uid()
        and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def private_directory(path: str | os.PathLike[str]) -> Path:
    """``path`` made (with any missing parents) with mode 0700, or checked if it exists.

    Raises :class:`UnsafeDirectory` when a symlink of another user lies on the way, or
    ``path`` (or a parent we made) is a symlink, not a directory, not ours, or writable by
    other users. An existing directory of ours that others may only read is accepted.
    """
    target = Path(os.path.abspath(path))
    missing: list[Path] = []
    existing = target
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    _check_ancestors(existing)
    for directory in reversed(missing):
        # Made meanwhile (by us or by someone else) is fine: it is checked just below.
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        _check_ours(directory)
    if not missing:
        _check_ours(target)
    return target


def _check_ancestors(path: Path) -> None:
    """Refuse a symlink on ``path``'s way that belongs to neither us nor root."""
    for ancestor in (path, *path.parents):
        try:
            info = os.lstat(ancestor)
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode) and info.st_uid not in (0, _own_uid()):
            raise UnsafeDirectory(
                f"{ancestor} is a symbolic link of uid {info.st_uid}, another user;"
                f" refusing to make or use {path} through it"
            )


def _check_ours(path: Path) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeDirectory(
            f"{path} is a symbolic link (to {os.readlink(path)!r}), not a directory:"
            " someone may have planted it; refusing to follow it"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if info.st_uid != _own_uid():
        raise UnsafeDirectory(
            f"{path} belongs to uid {info.st_uid}, not to us (uid {_own_uid()}):"
            " another user made it; refusing to use it"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o});"
            " refusing to use it"
        )
