"""Pure phrasing of what a start still waits for, and when a long wait reports progress."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mirakuru.core import probes
from mirakuru.core.probes import Leaf
from mirakuru.core.progress import FIRST_REPORT, REPORT_EVERY, next_report, reports_due
from mirakuru.core.unmet import attempts_phrase, explain, label

TCP = probes.tcp("127.0.0.1", 6399)
HTTP = probes.http("http://127.0.0.1:8000/health")
PID = probes.pid_file("/x/y.pid")
READY = probes.banner("ready")


def _never(_: Leaf) -> bool:
    return False


class TestLeaves:
    """Each kind of probe says what it is and what its last attempt found."""

    @pytest.mark.parametrize(
        ("probe", "last", "expected"),
        [
            (TCP, "connection refused", "tcp 127.0.0.1:6399: connection refused (412 attempts)"),
            (HTTP, "last answer 500", "http 127.0.0.1:8000/health: last answer 500 (412 attempts)"),
            (PID, "does not exist", "pid file /x/y.pid does not exist (412 attempts)"),
            (
                probes.unix_socket("/run/s.sock"),
                "connection refused",
                "unix socket /run/s.sock: connection refused (412 attempts)",
            ),
        ],
    )
    def test_polled(self, probe: Leaf, last: str, expected: str) -> None:
        """Polled probes: the probe, its last result, and the number of attempts."""
        assert explain(probe, _never, {probe: last}, 412) == expected

    def test_banner_names_the_streams(self) -> None:
        """A banner says which streams it watched and what happened to the others."""
        assert (
            explain(READY, _never, {}, 9, ["stdout"])
            == "banner 'ready' not seen on stdout (stderr is not captured)"
        )
        assert (
            explain(READY, _never, {}, 9, ["stdout", "stderr"])
            == "banner 'ready' not seen on stdout (stderr is captured but not watched)"
        )
        both = probes.banner("ready", ["stdout", "stderr"])
        assert explain(both, _never, {}, 9, ["stdout", "stderr"]) == (
            "banner 'ready' not seen on stdout or stderr"
        )

    def test_never_tried(self) -> None:
        """A leaf no attempt reached yet says so."""
        assert explain(TCP, _never, {}, 3) == "tcp 127.0.0.1:6399: not tried yet (3 attempts)"

    def test_labels(self) -> None:
        """IPv6 hosts are bracketed; HTTP names its method unless it is HEAD."""
        assert label(probes.tcp("::1", 80)) == "tcp [::1]:80"
        assert label(probes.http("https://h:1/p?q=1", method="GET")) == "https GET h:1/p?q=1"
        assert label(probes.sd_notify()) == "READY=1 on $NOTIFY_SOCKET"

    @pytest.mark.parametrize(("count", "words"), [(1, "1 attempt"), (0, "0 attempts")])
    def test_singular(self, count: int, words: str) -> None:
        """One attempt is singular."""
        assert attempts_phrase(count) == words


class TestCombinations:
    """all_of names the first member holding it up; any_of names every member."""

    def test_all_of_names_the_first_that_does_not_hold(self) -> None:
        """Members after the first unsatisfied one wait on it, so only it is named."""
        probe = probes.all_of(TCP, HTTP)
        last: dict[Leaf, str] = {TCP: "accepted", HTTP: "last answer 503"}
        text = explain(probe, lambda leaf: leaf == TCP, last, 5)
        assert text == "http 127.0.0.1:8000/health: last answer 503 (5 attempts)"

    def test_any_of_names_all(self) -> None:
        """None of the alternatives held: each says why."""
        probe = probes.any_of(TCP, PID)
        last: dict[Leaf, str] = {TCP: "connection refused", PID: "does not exist"}
        assert explain(probe, _never, last, 2) == (
            "tcp 127.0.0.1:6399: connection refused (2 attempts)"
            " and pid file /x/y.pid does not exist (2 attempts)"
        )


waits = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


class TestProgressReports:
    """A long wait reports after FIRST_REPORT seconds, then every REPORT_EVERY seconds."""

    def test_defaults(self) -> None:
        """After 5 s, then about every 30 s."""
        assert (FIRST_REPORT, REPORT_EVERY) == (5.0, 30.0)
        assert [reports_due(t) for t in (0.0, 4.99, 5.0, 34.9, 35.0, 65.0)] == [0, 0, 1, 1, 2, 3]

    @given(earlier=waits, later=waits)
    def test_never_decreases(self, earlier: float, later: float) -> None:
        """More waiting never earns fewer reports."""
        earlier, later = sorted((earlier, later))
        assert reports_due(earlier) <= reports_due(later)

    @given(waited=waits)
    def test_bounded_by_the_period(self, waited: float) -> None:
        """No wait earns more than one report per period after the first."""
        assert reports_due(waited) <= 1 + max(0.0, waited - FIRST_REPORT) / REPORT_EVERY

    def test_thresholds_given(self) -> None:
        """Callers (and tests) may choose the thresholds."""
        assert reports_due(0.25, first=0.2, every=0.1) == 1
        assert reports_due(0.45, first=0.2, every=0.1) == 3

    @given(reported=st.integers(0, 1000), waited=waits)
    def test_next_report_is_when_one_more_is_due(self, reported: int, waited: float) -> None:
        """A wait that made ``reported`` reports owes another exactly from next_report on."""
        due_at = next_report(reported)
        assume(abs(waited - due_at) > 1e-6 * max(1.0, due_at))  # not at float rounding's edge
        assert (reports_due(waited) > reported) == (waited >= due_at)
