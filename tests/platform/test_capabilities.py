"""The capability probe: one decision per process, MIRAKURU_PORTABLE forces every fallback."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator

import attrs
import pytest

from mirakuru.adapter import describe_capabilities
from mirakuru.adapter.capabilities import (
    PORTABLE_ENV,
    Capabilities,
    capabilities,
    portable_mode,
)

#: Every Linux fast path the probe decides on (kqueue is the BSD/macOS replacement instead).
FAST_PATHS = tuple(
    field.name for field in attrs.fields(Capabilities) if field.name not in ("portable", "kqueue")
)


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Let a test decide again, and leave the real decision to be made again after it."""
    capabilities.cache_clear()
    yield
    capabilities.cache_clear()


@pytest.mark.parametrize(
    ("value", "portable"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        (" 0 ", False),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        (" 1\n", True),
    ],
)
def test_portable_env_parsing(
    monkeypatch: pytest.MonkeyPatch, value: str | None, portable: bool
) -> None:
    if value is None:
        monkeypatch.delenv(PORTABLE_ENV, raising=False)
    else:
        monkeypatch.setenv(PORTABLE_ENV, value)
    assert portable_mode() is portable


@pytest.mark.usefixtures("fresh_probe")
def test_the_linux_fast_paths_are_all_probed() -> None:
    assert {"pidfd", "inotify", "proc_fs", "abstract_socket"} <= set(FAST_PATHS)


@pytest.mark.usefixtures("fresh_probe")
def test_portable_forces_every_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTABLE_ENV, "1")
    chosen = capabilities()
    assert chosen.portable
    assert not any(getattr(chosen, name) for name in FAST_PATHS)
    assert set(chosen.as_table().values()) == {"fallback"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="probes the Linux fast paths")
@pytest.mark.usefixtures("fresh_probe")
def test_linux_uses_pidfd_inotify_and_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ENV, raising=False)
    chosen = capabilities()
    assert not chosen.portable
    assert chosen.inotify
    assert chosen.abstract_socket
    assert chosen.proc_fs is os.path.isdir("/proc/self")
    assert chosen.pidfd is hasattr(os, "pidfd_open")


@pytest.mark.parametrize("platform", ["darwin", "freebsd14", "openbsd7", "win32"])
@pytest.mark.usefixtures("fresh_probe")
def test_non_linux_takes_the_fallbacks(monkeypatch: pytest.MonkeyPatch, platform: str) -> None:
    monkeypatch.delenv(PORTABLE_ENV, raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    chosen = capabilities()
    assert not any(getattr(chosen, name) for name in FAST_PATHS)
    assert chosen.kqueue is hasattr(select, "kqueue")


@pytest.mark.usefixtures("fresh_probe")
def test_kqueue_is_used_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ENV, raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(select, "kqueue", object, raising=False)
    assert capabilities().kqueue


@pytest.mark.usefixtures("fresh_probe")
def test_decided_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ENV, raising=False)
    first = capabilities()
    # A later change of the environment must not switch paths under running services.
    monkeypatch.setenv(PORTABLE_ENV, "1")
    assert capabilities() is first
    capabilities.cache_clear()
    assert capabilities().portable


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.usefixtures("fresh_probe")
def test_forked_child_keeps_the_parents_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same kernel, same environment: the child inherits the decision instead of probing."""
    monkeypatch.setenv(PORTABLE_ENV, "1")
    parent = capabilities()
    monkeypatch.delenv(PORTABLE_ENV)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            inherited = capabilities() == parent and capabilities.cache_info().misses == 1
            os.write(write_end, b"same" if inherited else b"different")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 64)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert answer == b"same"


@pytest.mark.usefixtures("fresh_probe")
def test_describe_names_every_capability_and_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTABLE_ENV, "1")
    text = describe_capabilities()
    assert PORTABLE_ENV in text
    assert "portable" in text
    for name in (*FAST_PATHS, "kqueue"):
        assert name in text
