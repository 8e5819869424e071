"""Cheap polling of TCP and HTTP probes: the kernel's socket table spares most connects."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirakuru import OutputExecutor, TCPExecutor, TimeoutExpired
from mirakuru.adapter.capabilities import capabilities
from mirakuru.adapter.readiness import evaluate, sockdiag
from mirakuru.core.budget import Budget
from mirakuru.core.probes import Probe, all_of, any_of, banner, http, pid_file, tcp
from tests.helpers import free_port

needs_diag = pytest.mark.skipif(
    not sockdiag.listener_question(socket.AF_INET, "127.0.0.1", 1),
    reason="needs netlink sock_diag with inet_diag",
)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def _attempt(probe: Probe) -> bool:
    return evaluate.attempt(probe, evaluate.within(Budget.unbounded()))


@needs_diag
class TestListening:
    """sockdiag.listening answers what a connect to a local port would find."""

    def test_a_listener_is_found(self, listener: socket.socket) -> None:
        """A listening loopback socket is found at its address and port."""
        port = listener.getsockname()[1]
        assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True

    def test_a_closed_port_is_not(self) -> None:
        """Nobody listening is a definite no, not an unknown."""
        assert sockdiag.listening(socket.AF_INET, "127.0.0.1", free_port()) is False

    def test_another_address_is_not(self, listener: socket.socket) -> None:
        """A listener bound to 127.0.0.1 does not answer for 127.0.0.2, as a connect would not."""
        port = listener.getsockname()[1]
        assert sockdiag.listening(socket.AF_INET, "127.0.0.2", port) is False

    def test_a_wildcard_listener_answers_for_loopback(self) -> None:
        """A listener on every address answers for 127.0.0.1."""
        with socket.socket() as server:
            server.bind(("0.0.0.0", 0))
            server.listen(1)
            port = server.getsockname()[1]
            assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True

    @pytest.mark.skipif(not _ipv6_loopback(), reason="needs IPv6 loopback")
    def test_ipv6_loopback(self) -> None:
        """An IPv6 listener is found through ::1, and not through the IPv4 loopback."""
        with socket.socket(socket.AF_INET6) as server:
            server.bind(("::1", 0))
            server.listen(1)
            port = server.getsockname()[1]
            assert sockdiag.listening(socket.AF_INET6, "::1", port) is True
            assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is False

    def test_many_questions_in_a_row(self, listener: socket.socket) -> None:
        """The shared netlink socket answers each question with its own answer."""
        port = listener.getsockname()[1]
        closed = free_port()
        for _ in range(50):
            assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True
            assert sockdiag.listening(socket.AF_INET, "127.0.0.1", closed) is False

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_a_forked_child_asks_on_its_own_socket(self, listener: socket.socket) -> None:
        """After fork, the child's answers come to the child (the channel is not shared)."""
        port = listener.getsockname()[1]
        assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            ok = all(
                sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True for _ in range(20)
            )
            os._exit(0 if ok else 1)
        for _ in range(20):
            assert sockdiag.listening(socket.AF_INET, "127.0.0.1", port) is True
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0


class TestAttempts:
    """A polled TCP or HTTP attempt, with and without the kernel's help."""

    def test_a_new_listener_is_seen_at_the_next_attempt(self) -> None:
        """Skipping connects never delays seeing a listener that appeared."""
        port = free_port()
        probe = tcp("127.0.0.1", port)
        for _ in range(5):
            assert not _attempt(probe)
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen(8)
            # Never accepted: ready after the accept wait (a program that reads later).
            assert _attempt(probe)

    def test_http_attempt_refused_without_a_listener(self) -> None:
        """An HTTP probe with nobody listening fails fast, without a request."""
        probe = http(f"http://127.0.0.1:{free_port()}/")
        assert not _attempt(probe)
        assert not _attempt(probe)

    @needs_diag
    def test_connects_anyway_now_and_then(
        self, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A listener the socket table cannot show (a NAT rule forwarding the port) is still
        found by the real connect made every CONNECT_ANYWAY seconds."""
        port = listener.getsockname()[1]
        probe = tcp("127.0.0.1", port)
        now = [1000.0]
        monkeypatch.setattr(evaluate, "monotonic", lambda: now[0])
        target = evaluate._target("127.0.0.1", port)
        target.connected_at = now[0]  # a real connect was just made
        monkeypatch.setattr(sockdiag, "listening_now", lambda _question: False)
        assert not _attempt(probe)
        now[0] += evaluate.CONNECT_ANYWAY / 2
        assert not _attempt(probe)
        now[0] += evaluate.CONNECT_ANYWAY
        assert evaluate._surely_refused("127.0.0.1", port) is False

    def test_unresolvable_host_is_not_ready(self) -> None:
        """A name that does not resolve is simply not ready (and is resolved again later)."""
        assert not _attempt(tcp("no-such-host.invalid", 80))


class TestExecutorProbe:
    """TCPExecutor builds its probe once, and again only when host or port change."""

    def test_probe_follows_attribute_changes(self) -> None:
        """A changed port is obeyed by the next check."""
        executor = TCPExecutor(["true"], host="127.0.0.1", port=1234)
        first = executor._readiness_probe()
        assert executor._readiness_probe() is first
        executor.port = 4321
        assert executor._readiness_probe() == tcp("127.0.0.1", 4321)

    def test_bad_port_set_later_is_named(self) -> None:
        """True is not the port 1, even after a valid port 1 was cached."""
        executor = TCPExecutor(["true"], host="127.0.0.1", port=1)
        executor._readiness_probe()
        executor.port = True
        with pytest.raises(TypeError, match=r"TCPExecutor\.port"):
            executor._readiness_probe()


@needs_diag
class TestRefusal:
    """evaluate.refusal: a cheap "surely not ready now" for polled probes, where it exists."""

    def test_a_refused_port_is_vouched_for(self) -> None:
        """With nobody listening and a connect just made, the gate says "skip"."""
        probe = tcp("127.0.0.1", free_port())
        assert not _attempt(probe)  # the real connect
        gate = evaluate.refusal(probe)
        assert gate is not None
        assert gate()

    def test_a_listener_is_never_skipped(self, listener: socket.socket) -> None:
        """With a listener, the gate says "make the attempt"."""
        gate = evaluate.refusal(tcp("127.0.0.1", listener.getsockname()[1]))
        assert gate is not None
        assert not gate()

    def test_http_uses_its_url(self) -> None:
        """An HTTP probe's gate asks about its URL's host and port."""
        probe = http(f"http://127.0.0.1:{free_port()}/health")
        assert not _attempt(probe)
        gate = evaluate.refusal(probe)
        assert gate is not None
        assert gate()

    def test_combinations(self) -> None:
        """all_of is refused by one refused member; any_of only when every member is."""
        refused = tcp("127.0.0.1", free_port())
        assert not _attempt(refused)
        both = all_of(refused, banner("up"))
        gate = evaluate.refusal(both)
        assert gate is not None
        assert gate()
        assert evaluate.refusal(any_of(refused, banner("up"))) is None
        either = evaluate.refusal(any_of(refused, refused))
        assert either is not None
        assert either()

    @pytest.mark.parametrize("host", ["192.0.2.1", "0.0.0.0"])
    def test_no_gate_beyond_loopback(self, host: str) -> None:
        """Only loopback addresses are vouched for by the local socket table."""
        assert evaluate.refusal(tcp(host, 80)) is None

    def test_no_gate_for_other_kinds(self, tmp_path: Path) -> None:
        """Banners and files have no gate: their checks are cheap or event-driven."""
        assert evaluate.refusal(banner("up")) is None
        assert evaluate.refusal(pid_file(str(tmp_path / "pid"))) is None


def checks_of_a_banner_that_never_comes() -> int:
    """The checks of a 0.5 s banner wait at sleep=0.01 that times out."""
    executor = OutputExecutor(["sleep", "60"], banner="never", sleep=0.01, timeout=0.5)
    with pytest.raises(TimeoutExpired):
        executor.start()
    return executor._attempts


class TestEventDrivenSleep:
    """Readiness that only an event can change gets no timed checks at a short ``sleep``."""

    @pytest.mark.skipif(
        not capabilities().pidfd,
        reason="needs pidfds (Linux): without one, exits are polled and a given sleep is kept",
    )
    def test_a_short_sleep_adds_no_wakeups_to_a_banner_wait(self) -> None:
        """A banner that never comes, sleep=0.01, 0.5 s: a few checks, not one per 10 ms."""
        assert checks_of_a_banner_that_never_comes() <= 3

    @pytest.mark.skipif(
        capabilities().pidfd, reason="exits polled only without a pidfd (MIRAKURU_PORTABLE=1)"
    )
    def test_without_a_pidfd_a_banner_wait_checks_no_faster_than_sleep(self) -> None:
        """Exits are polled then, every sleep: 0.5 s at sleep=0.01 is at most 50 checks
        (plus the first ramp's few), not one every 2.5 ms."""
        assert checks_of_a_banner_that_never_comes() <= 60

    def test_a_polled_probe_still_checks_every_sleep(self) -> None:
        """A port nobody listens on is still asked at least once per ``sleep``."""
        port = free_port()
        executor = TCPExecutor(
            ["sleep", "60"], host="127.0.0.1", port=port, sleep=0.05, timeout=0.5
        )
        with pytest.raises(TimeoutExpired):
            executor.start()
        assert executor._attempts >= 9
