"""The fault matrix: real programs, each scenario bounded, 0 survivors, no bystander signalled."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from mirakuru.adapter.capabilities import capabilities
from tests.faults import matrix, programs
from tests.helpers import needs_watchdog_pins

#: Daemons that leave the tree, the process group and the marker: only a cgroup holds them.
DAEMONS = {
    "setsid env-wiping daemon",
    "redis-server --daemonize yes",
}
#: Programs a scenario runs besides Python.
NEEDS = {
    "redis-server --daemonize yes": ("redis-server",),
}


@pytest.mark.parametrize("name", list(matrix.SCENARIOS))
def test_scenario(name: str, mark: str) -> None:
    """Each scenario leaves nothing running, stays bounded and spares the look-alike."""
    if name in DAEMONS and not capabilities().cgroup:
        pytest.skip("without a cgroup such a daemon escapes, as docs/teardown.rst says")
    for program in NEEDS.get(name, ()):
        if shutil.which(program) is None:
            pytest.skip(f"needs {program}")
    outcome = matrix.SCENARIOS[name](programs.REPO, mark)
    assert outcome.survivors == 0, outcome
    assert not outcome.bystander_hit, outcome
    assert 0 <= outcome.seconds < matrix.BOUND, outcome
    assert outcome.detail.startswith("rc=0"), outcome
    if name == "fork-then-exit":
        assert "clean" in outcome.detail, outcome
    if "watchdog" in name:
        assert "new_watchdog=True" in outcome.detail, outcome


def test_stragglers_get_a_short_grace(mark: str) -> None:
    """Descendants ignoring SIGTERM after their leader exited are killed well before 30 s."""
    outcome = matrix.stragglers(programs.REPO, mark)
    assert outcome.survivors == 0, outcome
    # The grace is 30 s (the executor's timeout); the straggler grace is 0.5 s.
    assert outcome.seconds < 10, outcome


@pytest.fixture(scope="module")
def postgres_template() -> Iterator[str]:
    """An initdb'ed data directory owned by ``nobody`` (PostgreSQL refuses to run as root)."""
    if shutil.which("initdb") is None or shutil.which("postgres") is None:
        pytest.skip("PostgreSQL (initdb, postgres) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL scenario runs postgres as 'nobody', which needs root")
    # Not under pytest's private (0700) temporary root: 'nobody' must reach the directory.
    root = tempfile.mkdtemp(prefix="mirakuru-pg-")
    try:
        data = matrix.postgres_cluster(root)
        assert data is not None
        yield data
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_watchdog_pins
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.parametrize("how", list(matrix.OWNER_SIGNALS))
def test_owner_dies_with_redis_and_postgres(how: str, mark: str, postgres_template: str) -> None:
    """A sleep, a real redis-server and a real PostgreSQL all go with their owner."""
    root = tempfile.mkdtemp(prefix="mirakuru-pgrun-")
    try:
        data = matrix.postgres_copy(postgres_template, root)
        extra = {
            "REDIS_PORT": str(matrix.free_port()),
            "PG_PORT": str(matrix.free_port()),
            "PG_DATA": data,
        }
        outcome = matrix.owner_dies(
            programs.REPO, mark, matrix.OWNER_SIGNALS[how], redis=True, postgres=data, extra=extra
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert outcome.survivors == 0, outcome
    assert not outcome.bystander_hit, outcome
