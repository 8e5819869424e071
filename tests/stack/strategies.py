"""Hypothesis strategies for stack declarations: valid ones, built as the dict tomllib gives."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["declarations", "names"]

names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
#: Text without braces: placeholders are added on purpose, never by chance.
plain = st.text(st.characters(codec="utf-8", exclude_characters="{}\x00"), max_size=12)
words = st.from_regex(r"[A-Za-z0-9_./-]{1,12}", fullmatch=True)


@st.composite
def ready_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A ``ready`` table with one or more checks, each valid."""
    table: dict[str, Any] = {}
    kinds = draw(
        st.sets(
            st.sampled_from(["tcp", "http", "output", "pid_file", "unix_socket", "notify"]),
            min_size=1,
        )
    )
    if "tcp" in kinds:
        port = draw(st.sampled_from(["{port}", "6379", "1"]))
        table["tcp"] = f"{draw(st.sampled_from(['127.0.0.1', '[::1]', 'localhost']))}:{port}"
    if "http" in kinds:
        table["http"] = f"http://127.0.0.1:{{port}}/{draw(words)}"
        if draw(st.booleans()):
            table["status"] = draw(st.sampled_from([200, 204, "2..", r"^3\d\d$"]))
        if draw(st.booleans()):
            table["method"] = draw(st.sampled_from(["GET", "HEAD", "POST"]))
    if "output" in kinds:
        table["output"] = draw(st.sampled_from(["ready", "^Listening", r"port \d+"]))
    if "pid_file" in kinds:
        table["pid_file"] = draw(words)
    if "unix_socket" in kinds:
        table["unix_socket"] = "/tmp/" + draw(words)
    if "notify" in kinds:
        table["notify"] = True
    return table


@st.composite
def declarations(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0912 - one branch per key
    """A valid declaration: an acyclic graph (each service depends only on earlier ones)."""
    service_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    services: dict[str, dict[str, Any]] = {}
    with_probe: set[str] = set()
    for index, name in enumerate(service_names):
        table: dict[str, Any] = {}
        if draw(st.booleans()):
            table["command"] = [draw(words), *draw(st.lists(plain, max_size=3))]
        else:
            table["command"] = " ".join(draw(st.lists(words, min_size=1, max_size=4)))
        if draw(st.booleans()):
            table["ready"] = draw(ready_tables())
            with_probe.add(name)
        earlier = service_names[:index]
        chosen = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        if chosen:
            conditions = {}
            for dependency in chosen:
                allowed = ["started", "completed"] + (["ready"] if dependency in with_probe else [])
                conditions[dependency] = draw(st.sampled_from(allowed))
            as_list = all(c == "ready" for c in conditions.values()) and draw(st.booleans())
            table["depends_on"] = list(conditions) if as_list else conditions
        if draw(st.booleans()):
            table["env"] = draw(
                st.dictionaries(st.from_regex(r"[A-Z_]{1,6}", fullmatch=True), plain, max_size=3)
            )
        if draw(st.booleans()):
            table["cwd"] = draw(words)
        for key in ("timeout", "stop_timeout"):
            if draw(st.booleans()):
                table[key] = draw(st.floats(0, 1e4, allow_nan=False) | st.integers(0, 10**4))
        if draw(st.booleans()):
            table["restart"] = draw(st.sampled_from(["no", "on-failure"]))
        if draw(st.booleans()):
            table["max_restarts"] = draw(st.integers(0, 100))
        services[name] = table
    # Ports of earlier services that use {port} may appear in a later service's env.
    for name in service_names:
        users = [other for other in service_names if "{port}" in str(services[other])]
        if not users:
            continue
        if draw(st.booleans()):
            target = draw(st.sampled_from(users))
            services[name].setdefault("env", {})["PEER"] = f"127.0.0.1:{{{target}.port}}"
    return {"services": services}
