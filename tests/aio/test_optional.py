"""anyio stays optional: ``import mirakuru`` and the blocking API never import it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import mirakuru
from mirakuru import Executor, ExecutorGroup, SimpleExecutor, probes, start_all
ex = Executor([sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(30)"],
              ready=probes.banner("ready"), timeout=30)
with start_all(ex):
    pass
SimpleExecutor(["true"]).start().stop()
leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("anyio", "trio", "sniffio"))
print(leaked)
"""


def test_blocking_api_does_not_import_anyio() -> None:
    """A whole blocking start and stop leave anyio (and trio) out of sys.modules."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
