"""Wiring a readiness probe into one run: banner watches, the sd_notify socket, directory
watches, and whether the wait can be event-driven or must poll."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping

from mirakuru.adapter.readiness.inotify import DirectoryWatch, watch_directory
from mirakuru.adapter.readiness.notify import NotifySocket, ServiceSenders
from mirakuru.adapter.run.pump import BannerWatch, OutputPump
from mirakuru.adapter.run.run import Run
from mirakuru.core.probes import Banner, Leaf, Probe, SdNotify, hopeless, only_event_driven
from mirakuru.core.probes import leaves as probe_leaves

__all__ = [
    "Readiness",
    "check_watched_streams",
    "directory_hints",
    "exit_code_within",
    "only_event_driven",
]


def check_watched_streams(probe: Probe, captured: Mapping[str, object]) -> None:
    """Refuse, before spawning, to watch output that will not be captured."""
    for leaf in probe_leaves(probe):
        if not isinstance(leaf, Banner):
            continue
        for stream in sorted(leaf.streams):
            if captured[stream] != subprocess.PIPE:
                raise ValueError(
                    f"the banner {leaf.pattern.pattern!r} watches {stream}, but {stream} "
                    f"is not captured ({stream}={captured[stream]!r}); "
                    f"pass {stream}=subprocess.PIPE"
                )


def directory_hints(paths: Iterable[str]) -> list[DirectoryWatch]:
    """Watches on the directories where ``paths`` (pid files, unix sockets) appear; see
    :func:`~mirakuru.core.plan.watched_paths`."""
    by_directory = {os.path.dirname(os.path.abspath(path)): path for path in paths}
    watches = [watch_directory(path) for path in by_directory.values()]
    return [watch for watch in watches if watch is not None]


def exit_code_within(process: subprocess.Popen[str] | None, seconds: float) -> int | None:
    """The process's exit code if it comes within ``seconds`` (its output just ended)."""
    if process is None:
        return None
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


class Readiness:
    """One run's event-driven readiness: banner watches on the pump, the notify socket."""

    def __init__(
        self,
        probe: Probe | None,
        on_status: Callable[[str], None],
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        wants_notify = probe is not None and any(
            isinstance(leaf, SdNotify) for leaf in probe_leaves(probe)
        )
        self.notify: NotifySocket | None = (
            NotifySocket(on_status, on_note=on_note) if wants_notify else None
        )
        self.watches: list[tuple[str, Banner, BannerWatch]] = []
        self._run: Run | None = None

    def attach(self, probe: Probe | None, run: Run, token: str | None = None) -> None:
        """Watch the run's captured streams for every banner of ``probe``, and have the
        reactor serve the notify socket for it (before the run is activated), accepting
        datagrams only from the run's process tree (or, of our uid, marked with ``token``)."""
        self.watches = []
        if self.notify is not None:
            self._run = run
            if run.real:
                self.notify.admit(ServiceSenders(run.process, token))
            run.watch(self.notify)
        if probe is None:
            return
        pump = run.pump
        for leaf in probe_leaves(probe):
            if isinstance(leaf, Banner):
                for stream in sorted(leaf.streams):
                    watch = BannerWatch(leaf.pattern)
                    pump.streams[stream].watches.append(watch)
                    self.watches.append((stream, leaf, watch))

    def seen(self, leaf: Banner | SdNotify) -> bool:
        """Whether an event-driven leaf has happened."""
        if isinstance(leaf, SdNotify):
            return self.notify is not None and self.notify.ready
        return any(watch.seen for _, banner, watch in self.watches if banner == leaf)

    def output_ended(self, probe: Probe, pump: OutputPump | None) -> bool:
        """Whether the output closed in a way that makes ``probe`` impossible to satisfy."""
        if pump is None or not self.watches:
            return False
        ended: set[Leaf] = set()
        for leaf in probe_leaves(probe):
            if isinstance(leaf, Banner) and not self.seen(leaf):
                watched = [pump.streams[name] for name, banner, _ in self.watches if banner == leaf]
                if all(stream.eof for stream in watched):
                    ended.add(leaf)
        return hopeless(probe, ended)

    def read_after_banners(self, run: Run) -> None:
        """Start each watched stream's reader after its banner line (as OutputExecutor did)."""
        for stream, _, watch in self.watches:
            if watch.seen and stream not in run.readers:
                run.reader_starts.setdefault(stream, watch.end_offset)

    def close(self) -> None:
        """Close the notify socket (readiness is decided, or the start failed)."""
        notify, self.notify = self.notify, None
        run, self._run = self._run, None
        if notify is not None:
            if run is not None:
                run.unwatch(notify)  # no reactor handler may touch the socket once closed
            notify.close()
