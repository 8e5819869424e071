"""The first end-to-end checks: a real process goes through the whole lifecycle."""

from __future__ import annotations

from mirakuru import SimpleExecutor, State


def test_start_stop_history() -> None:
    """A plain executor moves idle → starting → running → stopping → stopped."""
    executor = SimpleExecutor(["sleep", "30"])
    executor.start()
    assert executor.running()
    executor.stop()
    assert not executor.running()
    assert [change.dest for change in executor.history] == [
        State.STARTING,
        State.RUNNING,
        State.STOPPING,
        State.STOPPED,
    ]
