"""What one executor may cost the process that owns it: descriptors, memory, disk.

Each test provokes the real failure (a forked child, a file size limit, a descriptor limit,
lines of many megabytes) and checks the executor degrades instead of leaking or wedging.
Drivers run in a child interpreter whenever the test changes process-wide limits.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.faults.programs import REPO

#: Safety bound for every driver; never a timing target.
BOUND = 60.0


def run_python(source: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter that imports this checkout; bounded."""
    return subprocess.run(
        [sys.executable, "-c", source, *args],
        env={**os.environ, "PYTHONPATH": REPO, **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


FORKED_STARTS = r"""
import os, sys, time
from mirakuru import PidExecutor

work = sys.argv[1]
STARTS = 25

def inotify_count():
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                count += 1
        except OSError:
            pass
    return count

def cycle(tag):
    path = os.path.join(work, f"{tag}.pid")
    command = [sys.executable, "-c", f"open({path!r}, 'w').write('1'); import time; time.sleep(60)"]
    PidExecutor(command, path).start().stop()
    os.unlink(path)

# The parent has used a directory watch, so its closer thread exists when it forks.
cycle("parent")
child = os.fork()
if child == 0:
    code = 3
    try:
        for number in range(STARTS):
            cycle(f"child-{number}")
        deadline = time.monotonic() + 10
        while inotify_count() and time.monotonic() < deadline:
            time.sleep(0.01)  # closing an inotify descriptor waits out an RCU grace period
        code = min(inotify_count(), 100)
    finally:
        os._exit(code)
_, status = os.waitpid(child, 0)
print("leaked", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_forked_child_leaks_no_inotify_descriptor(tmp_path: os.PathLike[str]) -> None:
    """Twenty-five PidExecutor starts in a forked child leave no inotify descriptor open."""
    done = run_python(FORKED_STARTS, os.fspath(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["leaked", "0"], done.stderr
