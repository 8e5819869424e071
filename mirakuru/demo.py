"""A live demonstration: start a real service, wait until it is ready, use it, stop it.

Run with ``python -m mirakuru.demo``.
"""

from __future__ import annotations

import sys
import time

from mirakuru import Executor, SimpleExecutor

_SERVICE = r"""
import sys, time
time.sleep(0.2)  # pretend to initialise
print("service ready", flush=True)
for line in sys.stdin:
    print("echo:", line.strip(), flush=True)
"""


class ReadyLineExecutor(Executor):
    """Ready once the service has printed its first line."""

    def after_start_check(self) -> bool:
        return bool(self.output_tail())


def main() -> int:
    """Run the demonstration and print what happened."""
    began = time.monotonic()
    service = ReadyLineExecutor([sys.executable, "-c", _SERVICE], timeout=10)
    with service:
        ready_after = time.monotonic() - began
        print(f"ready after {ready_after * 1000:.1f} ms: {service!r}")
        print("last output line:", service.output_tail()[-1])
    print("state history:")
    for change in service.history:
        print(f"  {change.at - began:8.4f} s  {change}")
    sleeper = SimpleExecutor(["sleep", "60"]).start()
    sleeper.stop()
    print("a plain SimpleExecutor ended as", sleeper.state.value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
