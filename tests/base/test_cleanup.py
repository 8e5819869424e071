"""No service outlives its owner: interpreter exit and garbage collection kill the tree."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from mirakuru import SimpleExecutor
from tests.base.programs import sleeper
from tests.helpers import marked_processes, processes_with_token_prefix, wait_until

#: Starts a service with a grandchild, reports its token and PIDs, then ends as told.
OWNER = """
import json, sys
from mirakuru import SimpleExecutor
executor = SimpleExecutor(["sh", "-c", "sleep 60 & sleep 60"]).start()
print(json.dumps({{"token": executor._uuid, "pid": executor.process.pid}}), flush=True)
{ending}
"""

ENDINGS = {
    "falls off the end": "",
    "sys.exit(3)": "sys.exit(3)",
    "raises": "raise RuntimeError('owner crashed')",
    "drops the reference": "del executor",
}


@pytest.fixture
def reaper() -> Iterator[list[str]]:
    """Tokens appended here have their processes killed at teardown, whatever happened."""
    tokens: list[str] = []
    yield tokens
    for token in tokens:
        for process in processes_with_token_prefix(token):
            try:
                process.kill()
            except psutil.Error:
                continue


class TestInterpreterExit:
    """Executors still running when Python exits are killed with their trees."""

    @pytest.mark.parametrize("ending", ENDINGS.values(), ids=list(ENDINGS))
    def test_owner_exit_kills_service(self, ending: str, reaper: list[str]) -> None:
        """However the owning interpreter ends normally, its services end with it."""
        owner = subprocess.run(
            [sys.executable, "-c", OWNER.format(ending=ending)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        report = json.loads(owner.stdout.splitlines()[0])
        reaper.append(report["token"])
        assert wait_until(lambda: not processes_with_token_prefix(report["token"]))
        assert not psutil.pid_exists(report["pid"]) or (
            psutil.Process(report["pid"]).status() == psutil.STATUS_ZOMBIE
        )


class TestGarbageCollection:
    """An executor collected while running kills its tree; an idle one is quiet."""

    def test_collected_while_running(self) -> None:
        """Dropping the last reference to a running executor kills its process tree."""
        executor = SimpleExecutor(["sh", "-c", "sleep 60 & sleep 60"]).start()
        token = executor._uuid
        assert wait_until(lambda: len(processes_with_token_prefix(token)) >= 2)
        del executor
        gc.collect()
        assert wait_until(lambda: not processes_with_token_prefix(token))

    def test_collected_idle(self, recwarn: pytest.WarningsRecorder) -> None:
        """Collecting a never-started or stopped executor does nothing and says nothing."""
        idle = SimpleExecutor(sleeper())
        stopped = SimpleExecutor(sleeper()).start().stop()
        assert not marked_processes(stopped)
        del idle, stopped
        gc.collect()
        assert not recwarn.list
