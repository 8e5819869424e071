"""Once an HTTP server answers at all, it is asked no faster than the executor's ``sleep``.

The fast, cheap TCP phase stays for "not listening yet"; after the first answer (any
status), the application is up and polling it every few milliseconds only floods its log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirakuru import HTTPExecutor, SimpleExecutor, TimeoutExpired, probes
from tests.helpers import free_port
from tests.probes.conftest import service

#: How long each test lets the executor poll a server that answers with the wrong status.
WINDOW = 2.0


def _requests(record: Path) -> int:
    return len(record.read_text().splitlines()) if record.exists() else 0


@pytest.mark.parametrize(("status", "sleep"), [(500, None), (404, None), (500, 0.5)])
def test_answering_server_is_polled_at_sleep(
    tmp_path: Path, status: int, sleep: float | None
) -> None:
    """A server answering 404 or 500 gets about one request per ``sleep`` (0.1 s default)."""
    record = tmp_path / "requests.log"
    port = free_port()
    command = service("http", "--port", str(port), "--status", str(status), "--record", str(record))
    url = f"http://127.0.0.1:{port}/health"
    executor = (
        HTTPExecutor(command, url, timeout=WINDOW)
        if sleep is None
        else HTTPExecutor(command, url, timeout=WINDOW, sleep=sleep)
    )
    with pytest.raises(TimeoutExpired, match=f"last answer {status}"):
        executor.start()
    count = _requests(record)
    pace = sleep or 0.1
    # One request per `sleep` at most, plus a few for the first answers and rounding.
    assert 1 <= count <= WINDOW / pace + 3, count


def test_wait_for_probe_is_paced(tmp_path: Path) -> None:
    """probes.wait_for_probe paces an answering server the same way, and says what it got."""
    record = tmp_path / "requests.log"
    port = free_port()
    server = SimpleExecutor(
        service("http", "--port", str(port), "--status", "500", "--record", str(record))
    )
    with server:
        url = f"http://127.0.0.1:{port}/health"
        assert probes.wait_for_probe(probes.tcp("127.0.0.1", port), 30).ready
        before = _requests(record)
        outcome = probes.wait_for_probe(probes.http(url), WINDOW)
        count = _requests(record) - before
    assert not outcome.ready
    assert outcome.unmet is not None
    assert outcome.unmet.startswith(f"http 127.0.0.1:{port}/health: last answer 500 (")
    assert 1 <= count <= WINDOW / 0.1 + 3, count
