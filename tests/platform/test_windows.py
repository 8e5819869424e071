"""Windows: importing works where we can make it, and start() has a clear, typed refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mirakuru.compat import (
    SIGKILL,
    UnsupportedPlatform,
    check_platform,
    missing_platform_support,
)

FAKE_WINDOWS = Path(__file__).parent / "fake_windows"
ROOT = Path(__file__).parents[2]


def run_as_windows(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose sitecustomize fakes Windows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE_WINDOWS), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_this_system_is_supported() -> None:
    assert missing_platform_support() == ()
    check_platform()
    assert SIGKILL == signal.SIGKILL


def test_win32_is_refused_with_an_os_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(UnsupportedPlatform, match="'win32'") as refused:
        check_platform()
    assert isinstance(refused.value, OSError)
    assert "POSIX" in str(refused.value)


def test_the_refusal_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "killpg")
    monkeypatch.delattr(signal, "SIGKILL")
    assert missing_platform_support() == ("os.killpg", "signal.SIGKILL")
    with pytest.raises(UnsupportedPlatform, match=r"missing: os\.killpg, signal\.SIGKILL"):
        check_platform()


def test_the_fake_windows_interpreter_lacks_posix_names() -> None:
    probe = run_as_windows(
        "import os, signal, sys; "
        "print(sys.platform, hasattr(signal, 'SIGKILL'), hasattr(os, 'killpg'))"
    )
    assert probe.stdout.split() == ["win32", "False", "False"], probe.stderr


@pytest.mark.parametrize(
    "module", ["mirakuru.compat", "mirakuru.adapter", "mirakuru.adapter.capabilities"]
)
def test_platform_modules_import_on_windows(module: str) -> None:
    imported = run_as_windows(
        f"import {module}\n"
        "from mirakuru.compat import UnsupportedPlatform, check_platform\n"
        "from mirakuru.adapter import describe_capabilities\n"
        "print(describe_capabilities())\n"
        "try:\n"
        "    check_platform()\n"
        "except UnsupportedPlatform as refused:\n"
        "    print('refused:', refused)\n"
    )
    assert imported.returncode == 0, imported.stderr
    assert "refused: mirakuru runs services on POSIX systems" in imported.stdout
    assert "win32" in imported.stdout


def test_the_whole_package_imports_on_windows() -> None:
    imported = run_as_windows(
        "import mirakuru, mirakuru.base, mirakuru.pytest_plugin, mirakuru.pytest_plugin.shared\n"
        "from mirakuru.compat import UnsupportedPlatform, check_platform\n"
        "try:\n"
        "    check_platform()\n"
        "except UnsupportedPlatform:\n"
        "    print('refused')\n"
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "refused"


def test_start_refuses_before_spawning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On an unsupported platform start() raises UnsupportedPlatform and runs nothing."""
    from mirakuru import SimpleExecutor, State

    witness = tmp_path / "spawned"
    executor = SimpleExecutor(
        [sys.executable, "-c", f"open({str(witness)!r}, 'w').close()"], timeout=10
    )
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(UnsupportedPlatform, match="'win32'"):
        executor.start()
    monkeypatch.undo()
    assert executor.process is None
    assert executor.state is State.IDLE
    assert not witness.exists()
