"""The executor lifecycle as an explicit state machine.

The transition table is plain data (:data:`TRANSITIONS`) so that documentation can draw
it and stateful tests can use it as their oracle; :class:`Lifecycle` enforces it through a
private :mod:`transitions` machine. No effect ever lives in a machine callback: the facade
performs effects and then records what happened by firing a trigger.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import traceback
import warnings
from collections.abc import Callable, Mapping

import attrs
from transitions import Machine, MachineError

__all__ = [
    "NOTES_KEPT",
    "TRANSITIONS",
    "IllegalTransition",
    "Lifecycle",
    "ListenerFailed",
    "State",
    "StateChange",
    "Trigger",
    "allowed_triggers",
]


class State(enum.Enum):
    """Where an executor is in its life."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class Trigger(enum.Enum):
    """What happened to move an executor from one state to another."""

    START = "start"  # the process is being spawned and waited for
    READY = "ready"  # the readiness check passed
    STOP = "stop"  # stop() or kill() began terminating the process tree
    FINISH = "finish"  # the tree is gone and the exit code was acceptable
    FAIL = "fail"  # start-up failed, or the process finished with an unexpected code
    NOTIFY = "notify"  # not a transition: a note from the service (sd_notify STATUS=...)


#: Trigger → (sources, destination). The single source of truth for the lifecycle.
TRANSITIONS: Mapping[Trigger, tuple[frozenset[State], State]] = {
    Trigger.START: (frozenset({State.IDLE, State.STOPPED, State.FAILED}), State.STARTING),
    Trigger.READY: (frozenset({State.STARTING}), State.RUNNING),
    Trigger.STOP: (frozenset({State.STARTING, State.RUNNING}), State.STOPPING),
    Trigger.FINISH: (frozenset({State.STOPPING}), State.STOPPED),
    Trigger.FAIL: (
        frozenset({State.STARTING, State.RUNNING, State.STOPPING}),
        State.FAILED,
    ),
}


#: The triggers allowed from each state, worked out once: the facade asks before most fires.
_ALLOWED: Mapping[State, frozenset[Trigger]] = {
    state: frozenset(t for t, (sources, _) in TRANSITIONS.items() if state in sources)
    for state in State
}


def allowed_triggers(state: State) -> frozenset[Trigger]:
    """The triggers the table allows from ``state``."""
    return _ALLOWED[state]


class IllegalTransition(RuntimeError):
    """A trigger was fired from a state the transition table does not allow it from."""

    def __init__(self, trigger: Trigger, state: State) -> None:
        super().__init__(trigger, state)
        self.trigger = trigger
        self.state = state

    def __str__(self) -> str:
        allowed = ", ".join(sorted(t.value for t in allowed_triggers(self.state)))
        return (
            f"cannot {self.trigger.value!r} from state {self.state.value!r}"
            f" (allowed there: {allowed or 'nothing'})"
        )


class ListenerFailed(UserWarning):
    """A state listener raised; the change it was told about happened all the same."""


@attrs.frozen(slots=True)
class StateChange:
    """One recorded transition: what fired, from where, to where, when, and why.

    ``at`` is a reading of the monotonic clock the facade uses (``time.monotonic``);
    ``detail`` is a short human note such as the exit code or an escalation to SIGKILL.
    """

    trigger: Trigger
    source: State
    dest: State
    at: float
    detail: str | None = None

    def __str__(self) -> str:
        note = f" ({self.detail})" if self.detail else ""
        return f"{self.source.value} -> {self.dest.value} on {self.trigger.value}{note}"


Listener = Callable[[StateChange], object]


def _build_machine() -> Machine:
    return Machine(
        model=[],
        states=[state.value for state in State],
        transitions=[
            {
                "trigger": t.value,
                "source": [s.value for s in State if s in sources],
                "dest": d.value,
            }
            for t, (sources, d) in TRANSITIONS.items()
        ],
        initial=State.IDLE.value,
        model_attribute="_state",
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )


#: One machine drives every lifecycle, and no lifecycle is added to it as a model: a model
#: added with ``add_model`` gets ~20 bound convenience methods (~4.5 KB) and a place in the
#: machine's shared list. Each fire passes the lifecycle to the machine's event instead, which
#: reads and sets its ``_state``. Without a queue the machine keeps no per-event state, so
#: lifecycles on different threads neither wait for nor disturb each other.
_MACHINE = _build_machine()
_STATES = {state.value: state for state in State}
_EVENTS = {t: _MACHINE.events[t.value] for t in Trigger if t.value in _MACHINE.events}


#: How many bounded notes (sd_notify STATUS messages) the history keeps, the latest.
NOTES_KEPT = 100


class Lifecycle:
    """A typed wrapper around the state machine, with history and listeners."""

    __slots__ = ("_bounded", "_history", "_listeners", "_state", "dropped_notes")

    def __init__(self, initial: State = State.IDLE) -> None:
        self._state = initial.value  # read and set by the machine (its model_attribute)
        self._history: list[StateChange] = []
        self._listeners: list[Listener] = []
        # The bounded notes in the history, oldest first, each with len(history) when added.
        self._bounded: collections.deque[tuple[int, StateChange]] | None = None
        #: Bounded notes taken out of the history again to make room for newer ones.
        self.dropped_notes = 0

    @property
    def state(self) -> State:
        """The current state."""
        return _STATES[self._state]

    @property
    def history(self) -> tuple[StateChange, ...]:
        """Every transition so far, oldest first."""
        return tuple(self._history)

    def can(self, trigger: Trigger) -> bool:
        """Whether ``trigger`` is allowed from the current state."""
        return trigger in _ALLOWED[_STATES[self._state]]

    def fire(self, trigger: Trigger, at: float, detail: str | None = None) -> StateChange:
        """Move along ``trigger``, record the change and tell the listeners.

        Raises :class:`IllegalTransition` when the table does not allow it. A listener's
        ``Exception`` becomes a :class:`ListenerFailed` warning; anything else it raises
        (``pytest.fail()``, ``SystemExit``) is raised once every listener was told.
        """
        source = _STATES[self._state]
        # The machine is the one place that enforces the table; NOTIFY is none of its events.
        event = _EVENTS.get(trigger)
        if event is None:
            raise IllegalTransition(trigger, source)
        try:
            event.trigger(self)
        except MachineError:
            raise IllegalTransition(trigger, source) from None
        return self._record(StateChange(trigger, source, _STATES[self._state], at, detail))

    def note(self, detail: str, at: float, *, bounded: bool = False) -> StateChange:
        """Record a message from the service in the history without changing state.

        A ``bounded`` note (one of a series the service may send without end) stays in
        the history only while it is among the latest :data:`NOTES_KEPT` bounded notes;
        older ones are taken out and counted in :attr:`dropped_notes`.
        """
        state = _STATES[self._state]
        change = StateChange(Trigger.NOTIFY, state, state, at, detail)
        if bounded:
            self._keep_bounded(change)
        return self._record(change)

    def _keep_bounded(self, change: StateChange) -> None:
        if self._bounded is None:
            self._bounded = collections.deque()
        self._bounded.append((len(self._history), change))
        if len(self._bounded) <= NOTES_KEPT:
            return
        added_at, oldest = self._bounded.popleft()
        # Only bounded notes are ever taken out, and each was older than this one: it has
        # moved down by exactly the number taken out so far.
        index = added_at - self.dropped_notes
        if not (0 <= index < len(self._history) and self._history[index] is oldest):
            index = next(i for i, kept in enumerate(self._history) if kept is oldest)
        del self._history[index]
        self.dropped_notes += 1

    def _record(self, change: StateChange) -> StateChange:
        self._history.append(change)
        if not self._listeners:
            return change
        stopper: BaseException | None = None
        for listener in tuple(self._listeners):
            try:
                listener(change)
            except Exception as error:  # the change happened: a listener cannot undo it
                summary = "".join(traceback.format_exception_only(error)).strip()
                warnings.warn(
                    f"state listener {listener!r} failed on {change}: {summary}",
                    ListenerFailed,
                    stacklevel=2,
                )
            except BaseException as error:  # pytest.fail(), sys.exit(): it must propagate,
                stopper = stopper or error  # but only once every listener has heard
        if stopper is not None:
            raise stopper
        return change

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every future :class:`StateChange`."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
