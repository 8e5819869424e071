"""Free ports: nothing listens on them, and a shared reservation directory never repeats one."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mirakuru.adapter.ports import fill_port, free_port


class TestFreePort:
    """The chosen port can be bound at once, and reservations keep choices apart."""

    def test_port_can_be_bound(self) -> None:
        """A service can listen on the port right after it was chosen."""
        port = free_port()
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()

    def test_reservations_never_repeat(self, tmp_path: Path) -> None:
        """Ports claimed in one directory are all different and each leaves a claim file."""
        ports = [free_port(tmp_path / "claims") for _ in range(50)]
        assert len(set(ports)) == len(ports)
        assert {int(p.name) for p in (tmp_path / "claims").iterdir()} == set(ports)


class TestFillPort:
    """Only the exact ``{port}`` placeholder is replaced."""

    @pytest.mark.parametrize(
        ("text", "port", "expected"),
        [
            ("serve --port {port}", 8123, "serve --port 8123"),
            ("{port}:{port}", 1, "1:1"),
            ("${HOME} {other} {{port}}", 5, "${HOME} {other} {5}"),
            ("unchanged {port}", None, "unchanged {port}"),
        ],
    )
    def test_fill(self, text: str, port: int | None, expected: str) -> None:
        """The placeholder becomes the port; other braces stay as they are."""
        assert fill_port(text, port) == expected


class TestPublicPorts:
    """``mirakuru.ports`` is the documented home of the free-port helpers."""

    def test_run_reservations_under_the_basetemp(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Claims go to a directory of this run; chosen ports are claimed there."""
        from mirakuru import ports

        directory = ports.run_reservations(tmp_path_factory)
        assert directory.name == "mirakuru-ports"
        basetemp = tmp_path_factory.getbasetemp()
        assert directory.parent in (basetemp, basetemp.parent)
        port = ports.free_port(directory)
        assert (directory / str(port)).exists()
