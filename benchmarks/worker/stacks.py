"""Stacks: how long a mirakuru.toml of three independent services takes to be ready."""

from __future__ import annotations

import json
import sys

from benchmarks.worker.support import SERVICE, Context, clock

#: Each service listens this long after its interpreter started.
NEEDS = 1.0


def stack_ready(ctx: Context) -> None:
    """Seconds from ``Stack.start()`` to every service ready (their starts overlap)."""
    stack_class = getattr(ctx.mirakuru, "Stack", None)
    if stack_class is None:
        ctx.status = "n/a"
        ctx.note("published mirakuru has no stacks")
        return
    for _ in range(ctx.pick(5, 1)):
        folder = ctx.scratch("stack")
        text = ""
        for index in range(3):
            command = [sys.executable, str(SERVICE), "tcp", "--delay", str(NEEDS)]
            command += ["--port", "{port}", "--stamp", str(folder / f"s{index}.ready")]
            text += f"[services.s{index}]\ncommand = {json.dumps(command)}\n"
            text += 'ready = { tcp = "127.0.0.1:{port}" }\n'
        (folder / "mirakuru.toml").write_text(text)
        stack = stack_class.load(folder / "mirakuru.toml")
        began = clock()
        run = stack.start()
        ready = clock()
        try:
            ctx.record("ready_s", ready - began)
            last = max(float((folder / f"s{i}.ready").read_text()) for i in range(3))
            ctx.record("lag_ms", (ready - last) * 1000)
        finally:
            run.stop()
