"""``ready_table``: a probe written back as the ``ready`` table that makes it (for reuse)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core import probes
from mirakuru.core.stack import ReadySpec, build_probe, fill, ready_table
from tests.stack.strategies import ready_tables

ports = st.integers(1024, 65535)


def _probe(table: dict[str, Any], port: int) -> probes.Probe:
    return build_probe(ReadySpec(**table), "/srv", lambda text: fill(text, "svc", {"svc": port}))


class TestRoundTrip:
    """Table -> probe -> table -> probe gives the same probe."""

    @given(ready_tables(), ports)
    def test_same_probe(self, table: dict[str, Any], port: int) -> None:
        """The table written back builds an equal probe, on the same port."""
        made = _probe(table, port)
        assert _probe(ready_table(made, port), port) == made

    @given(ports, ports)
    def test_own_port_becomes_a_placeholder(self, own: int, other: int) -> None:
        """The service's own port is written ``{port}``; any other port stays a number."""
        table = ready_table(
            probes.all_of(probes.tcp("::1", own), probes.http(f"http://h:{other}/")), own
        )
        assert table["tcp"] == "[::1]:{port}"
        if other != own:
            assert table["http"] == f"http://h:{other}/"
        else:
            assert table["http"] == "http://h:{port}/"


class TestRefused:
    """What a ready table cannot say is refused, naming the probe."""

    @pytest.mark.parametrize(
        "probe",
        [
            probes.any_of(probes.tcp("h", 1), probes.tcp("h", 2)),
            probes.all_of(probes.tcp("h", 1), probes.tcp("h", 2)),
            probes.http("http://h:1/", headers={"A": "b"}),
            probes.http("http://h:1/", payload={"a": "b"}),
        ],
        ids=["any_of", "two_tcp", "headers", "payload"],
    )
    def test_refused(self, probe: probes.Probe) -> None:
        """TypeError with the probe's repr."""
        with pytest.raises(TypeError, match="ready table"):
            ready_table(probe, 1)
