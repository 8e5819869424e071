"""The lifecycle state machine, checked against its own transition table as the oracle."""

from __future__ import annotations

import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mirakuru.core import lifecycle as lifecycle_module
from mirakuru.core.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
    State,
    StateChange,
    Trigger,
    allowed_triggers,
)
from tests.core.strategies import instants

details = st.none() | st.text(max_size=20)


class Recorder:
    """A listener that remembers what it heard."""

    def __init__(self) -> None:
        self.heard: list[StateChange] = []

    def __call__(self, change: StateChange) -> None:
        self.heard.append(change)


class LifecycleMachine(RuleBasedStateMachine):
    """Fires random triggers at a Lifecycle and compares every outcome with the table."""

    def __init__(self) -> None:
        super().__init__()
        self.lifecycle = Lifecycle()
        self.expected_state = State.IDLE
        self.expected_history: list[StateChange] = []
        self.recorders = {name: Recorder() for name in "abcd"}
        self.listening: dict[str, bool] = {}

    @initialize(names=st.lists(st.sampled_from("abc"), unique=True, max_size=3))
    def listen(self, names: list[str]) -> None:
        """Start with some listeners attached."""
        for name in names:
            self.add_listener(name)

    @rule(name=st.sampled_from("abc"))
    def add_listener(self, name: str) -> None:
        """Attach a listener (at most once per name, to keep the oracle simple)."""
        if self.listening.get(name):
            return
        self.lifecycle.add_listener(self.recorders[name])
        self.listening[name] = True

    @rule(name=st.sampled_from("abcd"))
    def remove_listener(self, name: str) -> None:
        """Detach a listener; detaching an unknown one is harmless."""
        self.lifecycle.remove_listener(self.recorders[name])
        self.listening[name] = False

    @rule(trigger=st.sampled_from(Trigger), at=instants, detail=details)
    def fire(self, trigger: Trigger, at: float, detail: str | None) -> None:
        """A legal trigger moves as the table says; an illegal one raises and changes nothing."""
        # Triggers outside the table (notes) are never legal transitions.
        sources, dest = TRANSITIONS.get(trigger, (frozenset(), self.expected_state))
        source = self.expected_state
        assert self.lifecycle.can(trigger) == (source in sources)
        if source in sources:
            change = self.lifecycle.fire(trigger, at, detail)
            assert change == StateChange(trigger, source, dest, at, detail)
            self.expected_state = dest
            self.expected_history.append(change)
            self._expect_heard(change)
        else:
            before = {name: len(r.heard) for name, r in self.recorders.items()}
            with pytest.raises(IllegalTransition) as raised:
                self.lifecycle.fire(trigger, at, detail)
            assert (raised.value.trigger, raised.value.state) == (trigger, source)
            assert {name: len(r.heard) for name, r in self.recorders.items()} == before

    @rule(at=instants, detail=st.text(min_size=1, max_size=20))
    def note(self, at: float, detail: str) -> None:
        """A note from the service is recorded and heard without changing state."""
        change = self.lifecycle.note(detail, at)
        state = self.expected_state
        assert change == StateChange(Trigger.NOTIFY, state, state, at, detail)
        self.expected_history.append(change)
        self._expect_heard(change)

    def _expect_heard(self, change: StateChange) -> None:
        for name, recorder in self.recorders.items():
            if self.listening.get(name):
                assert recorder.heard[-1] is change
            else:
                assert all(heard is not change for heard in recorder.heard)

    @invariant()
    def state_matches_the_oracle(self) -> None:
        """The state is what the table predicts."""
        assert self.lifecycle.state is self.expected_state

    @invariant()
    def history_matches_the_oracle(self) -> None:
        """The history holds every legal change, in order, and nothing else."""
        assert list(self.lifecycle.history) == self.expected_history


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


class TestTable:
    """The transition table itself."""

    def test_every_state_is_reachable(self) -> None:
        """Each state is the destination of some trigger, or the initial one."""
        reachable = {State.IDLE} | {dest for _, dest in TRANSITIONS.values()}
        assert reachable == set(State)

    def test_only_notes_are_outside_the_table(self) -> None:
        """Every trigger but the note is a transition in the table."""
        assert set(Trigger) - set(TRANSITIONS) == {Trigger.NOTIFY}

    @pytest.mark.parametrize("state", list(State))
    def test_allowed_triggers_agree(self, state: State) -> None:
        """allowed_triggers reads the table."""
        expected = {t for t, (sources, _) in TRANSITIONS.items() if state in sources}
        assert allowed_triggers(state) == expected

    @pytest.mark.parametrize("state", [State.STOPPED, State.FAILED, State.IDLE])
    def test_restartable(self, state: State) -> None:
        """An executor can start again after it stopped or failed."""
        assert Trigger.START in allowed_triggers(state)


class TestIllegalTransition:
    """The error for a trigger fired from the wrong state."""

    def test_message_names_trigger_state_and_alternatives(self) -> None:
        """The message says what was tried, from where, and what is allowed there."""
        with pytest.raises(IllegalTransition) as raised:
            Lifecycle().fire(Trigger.READY, 1.0)
        assert str(raised.value) == "cannot 'ready' from state 'idle' (allowed there: start)"

    @given(state=st.sampled_from(State))
    def test_initial_state(self, state: State) -> None:
        """A lifecycle can begin in any state, with an empty history."""
        lifecycle = Lifecycle(state)
        assert lifecycle.state is state
        assert lifecycle.history == ()


class TestStateChange:
    """A recorded transition."""

    @pytest.mark.parametrize(
        ("detail", "text"),
        [
            (None, "running -> stopping on stop"),
            ("SIGTERM", "running -> stopping on stop (SIGTERM)"),
        ],
    )
    def test_str(self, detail: str | None, text: str) -> None:
        """A change prints as source, destination, trigger and note."""
        change = StateChange(Trigger.STOP, State.RUNNING, State.STOPPING, 2.0, detail)
        assert str(change) == text

    def test_frozen_and_hashable(self) -> None:
        """Changes are values: immutable, comparable and hashable."""
        change = StateChange(Trigger.START, State.IDLE, State.STARTING, 0.0)
        assert change == StateChange(Trigger.START, State.IDLE, State.STARTING, 0.0)
        assert hash(change) == hash(StateChange(Trigger.START, State.IDLE, State.STARTING, 0.0))
        with pytest.raises(AttributeError):
            change.at = 1.0  # type: ignore[misc]


class TestSharedMachine:
    """Every lifecycle is driven by one transitions machine."""

    def test_the_machine_keeps_no_lifecycle(self) -> None:
        """A lifecycle is not added to the shared machine, so nothing outlives it there."""
        lifecycles = [Lifecycle() for _ in range(10)]
        for lifecycle in lifecycles:
            lifecycle.fire(Trigger.START, 0.0)
        assert lifecycle_module._MACHINE.models == []

    def test_lifecycles_on_threads_do_not_interfere(self) -> None:
        """Threads cycling their own lifecycles at once each see exactly their own changes."""
        cycle = [Trigger.START, Trigger.READY, Trigger.STOP, Trigger.FINISH]
        rounds = 300
        barrier = threading.Barrier(8)
        lifecycles = [Lifecycle() for _ in range(8)]
        errors: list[BaseException] = []

        def spin(lifecycle: Lifecycle) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(rounds):
                    for trigger in cycle:
                        lifecycle.fire(trigger, 0.0)
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=spin, args=(lc,)) for lc in lifecycles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        for lifecycle in lifecycles:
            assert lifecycle.state is State.STOPPED
            assert [change.trigger for change in lifecycle.history] == cycle * rounds


#: A step of a history: a bounded note, a plain note, or a trigger (fired when allowed).
steps = st.lists(
    st.one_of(
        st.just(("bounded", None)),
        st.just(("note", None)),
        st.sampled_from(list(TRANSITIONS)).map(lambda trigger: ("fire", trigger)),
    ),
    max_size=400,
)


class TestBoundedNotes:
    """Bounded notes (sd_notify STATUS) keep only the latest few; everything else stays."""

    @given(steps)
    @example(
        [
            ("fire", Trigger.START),
            *([("bounded", None), ("note", None)] * 150),
            ("fire", Trigger.READY),
            *([("bounded", None)] * 120),
            ("fire", Trigger.STOP),
        ]
    )
    def test_history_keeps_the_latest_bounded_notes(
        self, plan: list[tuple[str, Trigger | None]]
    ) -> None:
        """The history is every other entry plus the last NOTES_KEPT bounded notes, in order."""
        machine = Lifecycle()
        heard = Recorder()
        machine.add_listener(heard)
        for number, (kind, trigger) in enumerate(plan):
            if kind == "bounded":
                machine.note(f"status {number}", float(number), bounded=True)
            elif kind == "note":
                machine.note(f"note {number}", float(number))
            elif trigger is not None and machine.can(trigger):
                machine.fire(trigger, float(number))
        bounded = [c for c in heard.heard if (c.detail or "").startswith("status")]
        kept = bounded[-lifecycle_module.NOTES_KEPT :]
        expected = [c for c in heard.heard if c not in bounded or c in kept]
        assert list(machine.history) == expected
        assert machine.dropped_notes == len(bounded) - len(kept)
