"""The test run's side of reuse, in-process: ``attach`` against a real supervisor."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import mirakuru
from mirakuru._reuse import ReuseUnavailable, attach
from mirakuru.adapter.guard.stackstate import StackState
from mirakuru.adapter.stackfile import load_stack
from mirakuru.cli.stack_commands import down
from mirakuru.core.stack import StackSpec
from tests.helpers import wait_until
from tests.stack.programs import needs_redis, write_stack
from tests.stack.test_reuse import LIMIT, REDIS, _alive


@pytest.fixture
def spec(tmp_path: Path) -> Iterator[StackSpec]:
    """A redis stack; whatever is kept of it is ended afterwards."""
    made = load_stack(write_stack(tmp_path, REDIS))
    yield made
    down(StackState(made.source), say=lambda _: None)
    assert not StackState(made.source).running()


@needs_redis
class TestAttach:
    """What ``attach`` does with the supervisor it finds."""

    def test_another_version_is_replaced_then_given_up(
        self, spec: StackSpec, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A supervisor of another version is ended; one that still disagrees: not kept."""
        lease = attach(spec, ["cache"], idle=60, timeout=LIMIT)
        pid = lease.services["cache"].pid
        assert pid is not None
        lease.close()
        monkeypatch.setattr(mirakuru, "__version__", "0.0.0")
        with pytest.raises(ReuseUnavailable, match="this supervisor runs mirakuru"):
            attach(spec, ["cache"], idle=60, timeout=LIMIT)
        assert wait_until(lambda: not _alive(pid), LIMIT)
        assert not StackState(spec.source).running()

    def test_a_bad_request_is_answered(self, spec: StackSpec) -> None:
        """A line that is no request gets a failure; what is kept runs on."""
        lease = attach(spec, ["cache"], idle=60, timeout=LIMIT)
        try:
            path = StackState(spec.source).control_path
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(LIMIT)
                sock.connect(str(path))
                sock.sendall(b"not json\n")
                answer = json.loads(sock.makefile().readline())
            assert answer["event"] == "failed"
            assert answer["message"].startswith("bad request")
            assert lease.services["cache"].running()
        finally:
            lease.close()

    def test_unknown_service(self, spec: StackSpec) -> None:
        """A name the declaration lacks fails the request, and nothing is kept."""
        from mirakuru._reuse import KeptFailed

        with pytest.raises(KeptFailed, match="nope"):
            attach(spec, ["nope"], idle=60, timeout=LIMIT)
