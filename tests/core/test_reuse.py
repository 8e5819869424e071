"""The pure decisions of reuse: the switch, the idle limit, judging and planning kept services."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirakuru.core.reuse import (
    DEFAULT_IDLE,
    Kept,
    Verdict,
    expired,
    idle_limit,
    judge,
    next_expiry,
    parse_duration,
    plan,
    setting,
)
from tests.core.strategies import durations, instants


class TestSetting:
    """Reuse is on only when asked for, and never under CI."""

    @pytest.mark.parametrize(
        ("environ", "option", "requested", "on"),
        [
            ({}, False, False, False),
            ({}, True, True, True),
            ({"MIRAKURU_REUSE": "1"}, False, True, True),
            ({"MIRAKURU_REUSE": "yes"}, False, True, True),
            ({"MIRAKURU_REUSE": "0"}, False, False, False),
            ({"MIRAKURU_REUSE": ""}, True, True, True),
            ({"MIRAKURU_REUSE": "1", "CI": "true"}, False, True, False),
            ({"CI": "false"}, True, True, False),
            ({"CI": ""}, True, True, True),
            ({"CI": "1"}, False, False, False),
        ],
    )
    def test_cases(self, environ: dict[str, str], option: bool, requested: bool, on: bool) -> None:
        """The variable or the option asks; any non-empty CI refuses."""
        found = setting(environ, option)
        assert (found.requested, found.on) == (requested, on)
        assert bool(found.why_off) == (requested and not on)

    def test_why_off_names_ci(self) -> None:
        """The reason names the variable and its value, for the terminal summary."""
        assert setting({"CI": "woodpecker"}, True).why_off == "CI is set (CI=woodpecker)"

    def test_unknown_value_is_an_error(self) -> None:
        """``MIRAKURU_REUSE=maybe`` is refused with the variable named."""
        with pytest.raises(ValueError, match="MIRAKURU_REUSE must be 1 or 0"):
            setting({"MIRAKURU_REUSE": "maybe"}, False)

    @given(st.dictionaries(st.sampled_from(["CI", "HOME", "X"]), st.text(max_size=5)))
    def test_never_on_under_ci(self, environ: dict[str, str]) -> None:
        """Whatever else is set, a non-empty CI means off."""
        if environ.get("CI"):
            assert not setting(environ, True).on


class TestDurations:
    """``MIRAKURU_REUSE_IDLE`` reads as people write durations."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("2h", 7200),
            ("90m", 5400),
            ("45s", 45),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("2d", 172800),
            ("600", 600),
            ("0.5", 0.5),
            (" 1H 5S ", 3605),
        ],
    )
    def test_accepted(self, text: str, seconds: float) -> None:
        """Units s, m, h, d, combined; a bare number is seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "h", "2x", "-1h", "0", "0s", "inf", "nan", "1h-", "s1"])
    def test_refused(self, text: str) -> None:
        """Anything else (or nothing, zero, infinity) names the variable."""
        with pytest.raises(ValueError, match="MIRAKURU_REUSE_IDLE expects a duration"):
            parse_duration(text)

    @given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99))
    def test_parts_add_up(self, hours: int, minutes: int, seconds: int) -> None:
        """``XhYmZs`` is the sum of its parts."""
        total = hours * 3600 + minutes * 60 + seconds
        if total:
            assert parse_duration(f"{hours}h{minutes}m{seconds}s") == total

    def test_default(self) -> None:
        """Unset: a few hours."""
        assert idle_limit({}) == DEFAULT_IDLE == 3 * 3600
        assert idle_limit({"MIRAKURU_REUSE_IDLE": "2h"}) == 7200


fingerprints = st.sampled_from(["a" * 64, "b" * 64])
facts = st.none() | st.builds(Kept, fingerprints, st.booleans(), st.none() | st.booleans())


class TestJudge:
    """A kept service is attached to only when all three checks hold."""

    @given(facts, fingerprints)
    def test_attach_only_when_provably_the_same(self, kept: Kept | None, wanted: str) -> None:
        """ATTACH exactly when the digest matches, the identity holds and the probe did not fail."""
        verdict = judge(kept, wanted)
        same = (
            kept is not None
            and kept.fingerprint == wanted
            and kept.alive
            and kept.probe_passed is not False
        )
        assert (verdict is Verdict.ATTACH) == same

    def test_definition_first(self) -> None:
        """A changed definition is reported as such even when the process is also dead."""
        assert judge(Kept("a", False, False), "b") is Verdict.CHANGED
        assert judge(Kept("a", False, None), "a") is Verdict.DEAD
        assert judge(Kept("a", True, False), "a") is Verdict.UNHEALTHY
        assert judge(None, "a") is Verdict.MISSING


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]:
    """A DAG of services (each depends on earlier ones), some kept, some wanted."""
    names = list(string.ascii_lowercase[: draw(st.integers(1, 7))])
    requires = {
        name: tuple(draw(st.sets(st.sampled_from(names[:index]))) if index else ())
        for index, name in enumerate(names)
    }
    kept = draw(st.sets(st.sampled_from(names)))
    # Whatever is kept was started with what it needs (a run never starts a dependent alone).
    for name in list(kept):
        stack = [name]
        while stack:
            for need in requires[stack.pop()]:
                if need not in kept:
                    kept.add(need)
                    stack.append(need)
    chosen = draw(st.sets(st.sampled_from(names), min_size=1))
    wanted: list[str] = []

    def place(name: str) -> None:
        if name not in wanted:
            for need in requires[name]:
                place(need)
            wanted.append(name)

    for name in sorted(chosen):
        place(name)
    verdicts = {
        name: draw(st.sampled_from(list(Verdict))) if name in kept else Verdict.MISSING
        for name in wanted
    }
    running = {name: requires[name] for name in kept}
    return wanted, verdicts, running


class TestPlan:
    """What is stopped and started for one request."""

    @given(situations())
    def test_every_wanted_service_ends_up_running(
        self, situation: tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]
    ) -> None:
        """Each wanted service is either attached to or started, never both."""
        wanted, verdicts, running = situation
        steps = plan(wanted, verdicts, running)
        assert set(steps.attach) | set(steps.start) == set(wanted)
        assert not set(steps.attach) & set(steps.start)

    @given(situations())
    def test_nothing_runs_on_a_restarted_dependency(
        self, situation: tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]
    ) -> None:
        """A kept service left running depends on nothing that is stopped."""
        wanted, verdicts, running = situation
        steps = plan(wanted, verdicts, running)
        survivors = set(running) - set(steps.stop)
        for name in survivors:
            assert not set(running[name]) & set(steps.stop)

    @given(situations())
    def test_only_what_must_go_is_stopped(
        self, situation: tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]
    ) -> None:
        """A healthy, unchanged service whose dependencies all stay is attached to."""
        wanted, verdicts, running = situation
        steps = plan(wanted, verdicts, running)
        bad = {n for n in wanted if n in running and verdicts[n] is not Verdict.ATTACH}
        assert bad <= set(steps.stop)
        for name in steps.stop:
            assert name in bad or set(running[name]) & set(steps.stop)

    @given(situations())
    def test_dependents_are_stopped_first(
        self, situation: tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]
    ) -> None:
        """In the stop order, a service comes before everything it depends on."""
        wanted, verdicts, running = situation
        stop = plan(wanted, verdicts, running).stop
        for position, name in enumerate(stop):
            assert not set(running[name]) & set(stop[:position])

    @given(situations())
    def test_start_order_keeps_dependencies_first(
        self, situation: tuple[list[str], dict[str, Verdict], dict[str, tuple[str, ...]]]
    ) -> None:
        """What is started comes in the wanted (dependencies first) order."""
        wanted, verdicts, running = situation
        start = plan(wanted, verdicts, running).start
        assert list(start) == [name for name in wanted if name in start]

    def test_a_changed_dependency_takes_its_dependents_along(self) -> None:
        """cache changed: api (wanted) and worker (kept, not wanted) stop; db stays."""
        running = {"db": (), "cache": (), "api": ("cache", "db"), "worker": ("cache",)}
        verdicts = {
            "db": Verdict.ATTACH,
            "cache": Verdict.CHANGED,
            "api": Verdict.ATTACH,
        }
        steps = plan(["db", "cache", "api"], verdicts, running)
        assert set(steps.stop) == {"cache", "api", "worker"}
        assert steps.stop.index("cache") > max(steps.stop.index("api"), steps.stop.index("worker"))
        assert steps.start == ("cache", "api")
        assert steps.attach == ("db",)


class TestIdle:
    """Which kept services ran out of their idle time, and when the next one will."""

    @given(st.dictionaries(st.sampled_from("abcde"), st.none() | instants), durations, instants)
    def test_expired(self, uses: dict[str, float | None], idle: float, now: float) -> None:
        """Expired: not in use, and unused for at least the limit."""
        found = set(expired(uses, idle, now))
        for name, when in uses.items():
            assert (name in found) == (when is not None and when + idle <= now)

    @given(st.dictionaries(st.sampled_from("abcde"), st.none() | instants), durations)
    def test_next_expiry(self, uses: dict[str, float | None], idle: float) -> None:
        """Nothing expires before the next expiry; at it, something does."""
        when = next_expiry(uses, idle)
        if when is None:
            assert all(value is None for value in uses.values())
            return
        assert expired(uses, idle, when)
        assert all(used is None or used + idle >= when for used in uses.values())
