"""Probe values: validation at construction, value semantics, and combinator logic."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru import probes
from mirakuru.adapter.readiness.evaluate import attempt
from mirakuru.core.probes import Banner, Leaf, Probe, SdNotify, satisfied


class TestValidation:
    """Bad input is refused when the probe is made, naming the field and the value."""

    @pytest.mark.parametrize(
        ("make", "error", "names"),
        [
            (lambda: probes.banner("(unclosed"), ValueError, "(unclosed"),
            (lambda: probes.banner("x", streams=("stdin",)), ValueError, "stdin"),  # type: ignore[arg-type]
            (lambda: probes.banner("x", streams=()), ValueError, "streams"),
            (lambda: probes.banner(b"bytes"), TypeError, "banner"),  # type: ignore[arg-type]
            (lambda: probes.tcp("127.0.0.1", 0), ValueError, "0"),
            (lambda: probes.tcp("127.0.0.1", 65536), ValueError, "65536"),
            (lambda: probes.tcp("127.0.0.1", True), TypeError, "port"),
            (lambda: probes.tcp("127.0.0.1", "80"), TypeError, "'80'"),  # type: ignore[arg-type]
            (lambda: probes.tcp("", 80), ValueError, "host"),
            (lambda: probes.http("http:///path"), ValueError, "host"),
            (lambda: probes.http("ftp://example.org/"), ValueError, "ftp://"),
            (lambda: probes.http("http://h:99999/"), ValueError, "port"),
            (lambda: probes.http("http://h/", request_timeout=-1), ValueError, "request_timeout"),
            (lambda: probes.http("http://h/", status="(("), ValueError, "(("),
            (lambda: probes.http("http://h/", method=" "), ValueError, "method"),
            (lambda: probes.pid_file(""), ValueError, "filename"),
            (lambda: probes.unix_socket(""), ValueError, "socket_name"),
            (probes.all_of, ValueError, "AllOf"),
            (lambda: probes.any_of("tcp"), TypeError, "'tcp'"),  # type: ignore[arg-type]
        ],
    )
    def test_refused(self, make: object, error: type[Exception], names: str) -> None:
        """Each bad value raises the right error type, and the message names it."""
        with pytest.raises(error) as raised:
            make()  # type: ignore[operator]
        assert names in str(raised.value)


class TestValues:
    """Probes are small immutable values that compare and print precisely."""

    def test_equal_and_hashable(self) -> None:
        """Two probes made alike are equal and hash alike."""
        assert probes.tcp("::1", 80) == probes.tcp("[::1]", 80)
        assert (
            len({probes.http("http://h/", status=200), probes.http("http://h/", status=200)}) == 1
        )

    @pytest.mark.parametrize(
        ("probe", "text"),
        [
            (probes.tcp("localhost", 5432), "tcp('localhost', 5432)"),
            (probes.pid_file("/run/x.pid"), "pid_file('/run/x.pid')"),
            (probes.sd_notify(), "sd_notify()"),
            (
                probes.all_of(probes.tcp("h", 1), probes.unix_socket("/s")),
                "all_of(tcp('h', 1), unix_socket('/s'))",
            ),
        ],
    )
    def test_repr(self, probe: Probe, text: str) -> None:
        """The repr reads like the factory call that made the probe."""
        assert repr(probe) == text

    def test_frozen(self) -> None:
        """A probe cannot be changed after it is made."""
        probe = probes.tcp("h", 1)
        with pytest.raises(AttributeError):
            probe.port = 2  # type: ignore[misc]

    def test_compiled_banner_keeps_flags(self) -> None:
        """A compiled pattern keeps its flags, and gains per-line anchors."""
        banner = probes.banner(re.compile("ready", re.IGNORECASE))
        assert banner.pattern.flags & re.IGNORECASE
        assert banner.pattern.search("x\nREADY\n")
        assert probes.banner("^ready$").pattern.search("log line\nready\nmore")

    def test_combinators_flatten(self) -> None:
        """Nested combinators of one kind flatten; a single probe stands alone."""
        a, b, c = probes.tcp("h", 1), probes.tcp("h", 2), probes.tcp("h", 3)
        assert probes.all_of(a, probes.all_of(b, c)) == probes.all_of(a, b, c)
        assert probes.any_of(a) == a

    def test_http_status_forms(self) -> None:
        """Status may be an int, a string or a compiled pattern, matched at the start."""
        assert probes.http("http://h/", status=200).status.match("200")
        assert probes.http("http://h/", status="3").status.match("301")
        assert probes.http("http://h/", status=re.compile("40[14]")).status.match("404")
        assert not probes.http("http://h/").status.match("500")


# Event-driven leaves can be evaluated without any I/O: perfect for property tests.
_LEAVES: list[Leaf] = [*(probes.banner(f"line {n}") for n in range(4)), probes.sd_notify()]


def _trees() -> st.SearchStrategy[Probe]:
    leaf = st.sampled_from(_LEAVES)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=4).map(lambda ps: probes.all_of(*ps)),
            st.lists(inner, min_size=1, max_size=4).map(lambda ps: probes.any_of(*ps)),
        ),
        max_leaves=12,
    )


class TestCombinatorSemantics:
    """all_of holds iff every part holds; any_of iff at least one does."""

    @given(parts=st.lists(st.sampled_from(_LEAVES), min_size=1, max_size=5), data=st.data())
    def test_all_and_any(self, parts: list[Leaf], data: st.DataObject) -> None:
        """The combinators agree with Python's all() and any() over their parts."""
        ready = {leaf: data.draw(st.booleans()) for leaf in _LEAVES}
        assert satisfied(probes.all_of(*parts), ready) == all(ready[p] for p in parts)
        assert satisfied(probes.any_of(*parts), ready) == any(ready[p] for p in parts)

    @given(tree=_trees(), data=st.data())
    def test_attempt_matches_pure_semantics(self, tree: Probe, data: st.DataObject) -> None:
        """One attempt of a probe tree gives what the pure semantics say, asking each
        event-driven leaf at most once per attempt and never asking for time."""
        ready = {leaf: data.draw(st.booleans()) for leaf in _LEAVES}
        asked: list[Banner | SdNotify] = []

        def events(leaf: Banner | SdNotify) -> bool:
            asked.append(leaf)
            return ready[leaf]

        def no_time(_: float | None) -> float:
            raise AssertionError("event-driven leaves need no time budget")

        assert attempt(tree, no_time, events) == satisfied(tree, ready)
        assert len(asked) <= len(probes.leaves(tree))
