"""The stack declaration core: parsing, validation and hashing, without starting anything."""

from __future__ import annotations

import itertools
import pickle
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirakuru.core.stack import (
    Condition,
    DependencyCycle,
    InvalidValue,
    ReadyWithoutProbe,
    Restart,
    StackError,
    UnknownDependency,
    UnknownKey,
    UnknownPlaceholder,
    WrongType,
    build_probe,
    fill,
    parse_stack,
    restart_delay,
)
from tests.stack.strategies import declarations
from tests.stack.toml_text import dumps

SOURCE = "/srv/app/mirakuru.toml"

EXAMPLE = """
[services.cache]
command = "redis-server --port {port} --save ''"
ready = { tcp = "127.0.0.1:{port}" }

[services.migrate]
command = ["python", "manage.py", "migrate"]

[services.api]
command = ["python", "-m", "myapp", "--port", "{port}"]
ready = { http = "http://127.0.0.1:{port}/health" }
depends_on = { cache = "ready", migrate = "completed" }
env = { CACHE_URL = "redis://127.0.0.1:{cache.port}/0" }
cwd = "backend"
timeout = 60
stop_timeout = 10
restart = "on-failure"
"""


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE)


class TestParse:
    """The issue's example file parses into the values it describes."""

    def test_example(self) -> None:
        """Commands are split, conditions typed, defaults filled, file order kept."""
        stack = parse_stack(example(), SOURCE)
        assert stack.names == ("cache", "migrate", "api")
        cache = stack.service("cache")
        assert cache.command == ("redis-server", "--port", "{port}", "--save", "")
        api = stack.service("api")
        assert api.depends_on == (("cache", Condition.READY), ("migrate", Condition.COMPLETED))
        assert api.restart is Restart.ON_FAILURE
        assert stack.service("migrate").ready is None
        assert stack.resolved_cwd("api") == "/srv/app/backend"
        assert stack.resolved_cwd("cache") == "/srv/app"

    def test_order_puts_dependencies_first(self) -> None:
        """``order`` gives a service's dependencies before it, and only what is needed."""
        stack = parse_stack(example(), SOURCE)
        assert stack.order(["api"]) == ("cache", "migrate", "api")
        assert stack.order(["cache"]) == ("cache",)
        assert stack.order() == ("cache", "migrate", "api")

    def test_list_of_dependencies_means_ready(self) -> None:
        """``depends_on = ["cache"]`` waits for cache to be ready."""
        data = example()
        data["services"]["api"]["depends_on"] = ["cache"]
        stack = parse_stack(data, SOURCE)
        assert stack.service("api").depends_on == (("cache", Condition.READY),)

    def test_placeholders_are_filled(self) -> None:
        """``{port}`` is the service's own port, ``{NAME.port}`` another's; ``{{x}}`` is literal."""
        ports = {"api": 8000, "cache": 6379}
        assert fill("--port {port}", "api", ports) == "--port 8000"
        assert fill("redis://h:{cache.port}/0", "api", ports) == "redis://h:6379/0"
        assert fill('{{port}} ${HOME} {} {"a": 1}', "api", ports) == '{port} ${HOME} {} {"a": 1}'

    def test_probe_from_ready_table(self) -> None:
        """Several checks in one ready table must all hold; relative paths follow cwd."""
        stack = parse_stack(
            {
                "services": {
                    "db": {
                        "command": "db",
                        "ready": {"tcp": "127.0.0.1:{port}", "pid_file": "db.pid"},
                    }
                }
            },
            SOURCE,
        )
        ready = stack.service("db").ready
        assert ready is not None
        probe = build_probe(ready, "/srv/app", lambda text: fill(text, "db", {"db": 5432}))
        assert repr(probe) == "all_of(tcp('127.0.0.1', 5432), pid_file('/srv/app/db.pid'))"

    def test_pyproject_prefix(self) -> None:
        """Key paths in ``[tool.mirakuru]`` errors start with ``tool.mirakuru``."""
        data = example()
        data["services"]["api"]["depends_on"] = {"cach": "ready"}
        with pytest.raises(UnknownDependency) as error:
            parse_stack(data, "/srv/pyproject.toml", prefix="tool.mirakuru")
        assert error.value.key == "tool.mirakuru.services.api.depends_on.cach"


def _broken(change: Any) -> dict[str, Any]:
    data = example()
    change(data["services"])
    return data


class TestValidation:
    """Each mistake is a typed error naming the file and the key path, before any start."""

    @pytest.mark.parametrize(
        ("change", "kind", "key", "words"),
        [
            (
                lambda s: s["api"].update(depends_on={"cach": "ready"}),
                UnknownDependency,
                "services.api.depends_on.cach",
                "did you mean 'cache'",
            ),
            (
                lambda s: s["api"].update(depends_on=["cache", "nope"]),
                UnknownDependency,
                "services.api.depends_on.nope",
                "no service 'nope'",
            ),
            (
                lambda s: s["api"].update(comand="x"),
                UnknownKey,
                "services.api.comand",
                "did you mean 'command'",
            ),
            (
                lambda s: s["cache"]["ready"].update(tpc="x"),
                UnknownKey,
                "services.cache.ready.tpc",
                "unknown key",
            ),
            (
                lambda s: s["api"].update(timeout="5"),
                WrongType,
                "services.api.timeout",
                "expected a number of seconds, got a string",
            ),
            (
                lambda s: s["api"].update(command=["python", 3]),
                WrongType,
                "services.api.command[1]",
                "expected a string, got an integer",
            ),
            (
                lambda s: s["api"].update(env={"A": True}),
                WrongType,
                "services.api.env.A",
                "expected a string",
            ),
            (
                lambda s: s.update(cache=["redis-server"]),
                WrongType,
                "services.cache",
                "expected a table, got a list",
            ),
            (
                lambda s: s["api"].update(depends_on={"cache": "healthy"}),
                InvalidValue,
                "services.api.depends_on.cache",
                "'started', 'ready' or 'completed'",
            ),
            (
                lambda s: s["api"].update(restart="always"),
                InvalidValue,
                "services.api.restart",
                "'no' or 'on-failure'",
            ),
            (
                lambda s: s["api"].update(ready={"http": "ftp://x/"}),
                InvalidValue,
                "services.api.ready.http",
                "http:// or https://",
            ),
            (
                lambda s: s["api"].update(ready={"output": "("}),
                InvalidValue,
                "services.api.ready.output",
                "not a valid regular expression",
            ),
            (
                lambda s: s["cache"].update(ready={"tcp": "localhost"}),
                InvalidValue,
                "services.cache.ready.tcp",
                "HOST:PORT",
            ),
            (
                lambda s: s["cache"].update(ready={}),
                InvalidValue,
                "services.cache.ready",
                "has no check",
            ),
            (
                lambda s: s["api"].update(command=""),
                InvalidValue,
                "services.api.command",
                "must name a program",
            ),
            (
                lambda s: s["api"].update(command="python 'unclosed"),
                InvalidValue,
                "services.api.command",
                "cannot split",
            ),
            (
                lambda s: s["api"].pop("command"),
                InvalidValue,
                "services.api",
                "has no command",
            ),
            (
                lambda s: s["api"].update(depends_on={"migrate": "ready"}),
                ReadyWithoutProbe,
                "services.api.depends_on.migrate",
                "'migrate' has no ready check",
            ),
            (
                lambda s: s["api"]["env"].update(X="{prot}"),
                UnknownPlaceholder,
                "services.api.env.X",
                "unknown placeholder {prot}",
            ),
            (
                lambda s: s["api"].update(command="app --db {db.port}"),
                UnknownPlaceholder,
                "services.api.command[2]",
                "no service 'db'",
            ),
            (
                lambda s: s["api"]["env"].update(X="{migrate.port}"),
                UnknownPlaceholder,
                "services.api.env.X",
                "'migrate' does not use {port}",
            ),
            (
                lambda s: s["cache"].update(depends_on={"api": "started"}),
                DependencyCycle,
                "services.cache.depends_on.api",
                "dependency cycle: cache -> api -> cache",
            ),
            (
                lambda s: s["cache"].update(depends_on={"cache": "started"}),
                DependencyCycle,
                "services.cache.depends_on.cache",
                "cache -> cache",
            ),
            (
                lambda s: s.update({"my.db": {"command": "x"}}),
                InvalidValue,
                "services.my.db",
                "letters, digits",
            ),
        ],
    )
    def test_error(self, change: Any, kind: type[StackError], key: str, words: str) -> None:
        """The error's type, key path and message; its text starts with the file."""
        with pytest.raises(kind) as raised:
            parse_stack(_broken(change), SOURCE)
        error = raised.value
        assert error.key == key
        assert words in error.reason
        assert str(error).startswith(f"{SOURCE}: {key}: ")

    def test_unknown_top_level_key(self) -> None:
        """A typo at the top level (``service``) is named too."""
        with pytest.raises(UnknownKey) as error:
            parse_stack({"service": {}}, SOURCE)
        assert error.value.key == "service"

    def test_no_services(self) -> None:
        """A file that declares nothing is refused."""
        with pytest.raises(InvalidValue, match="declares no service"):
            parse_stack({}, SOURCE)

    def test_errors_pickle(self) -> None:
        """Errors cross process boundaries (pytest-xdist) with their fields."""
        with pytest.raises(DependencyCycle) as raised:
            parse_stack(_broken(lambda s: s["cache"].update(depends_on=["api"])), SOURCE)
        copy = pickle.loads(pickle.dumps(raised.value))  # noqa: S301 - our own bytes
        assert (copy.key, copy.cycle, str(copy)) == (
            raised.value.key,
            raised.value.cycle,
            str(raised.value),
        )


class TestFingerprint:
    """A service's fingerprint identifies its definition, and only that."""

    def test_stable_and_ignores_unrelated_changes(self) -> None:
        """Same definition, same digest; another service's change leaves it alone."""
        first = parse_stack(example(), SOURCE)
        changed = _broken(lambda s: s["cache"].update(stop_timeout=1))
        second = parse_stack(changed, SOURCE)
        assert first.fingerprint("api", "4.0") == second.fingerprint("api", "4.0")
        assert len(first.fingerprint("api", "4.0")) == 64

    @pytest.mark.parametrize(
        "change",
        [
            lambda s: s["api"]["command"].append("--debug"),
            lambda s: s["api"]["env"].update(DEBUG="1"),
            lambda s: s["api"].update(cwd="frontend"),
            lambda s: s["api"]["ready"].update(status=204),
            lambda s: s["api"]["depends_on"].update(cache="started"),
        ],
    )
    def test_definition_changes_change_it(self, change: Any) -> None:
        """Command, env, cwd, probe and dependency conditions all count."""
        before = parse_stack(example(), SOURCE).fingerprint("api", "4.0")
        assert parse_stack(_broken(change), SOURCE).fingerprint("api", "4.0") != before

    def test_version_and_location_count(self) -> None:
        """Another package version or another directory is another definition."""
        stack = parse_stack(example(), SOURCE)
        elsewhere = parse_stack(example(), "/other/mirakuru.toml")
        assert stack.fingerprint("api", "4.0") != stack.fingerprint("api", "4.1")
        assert stack.fingerprint("api", "4.0") != elsewhere.fingerprint("api", "4.0")


class TestRestartDelay:
    """Restarts back off, doubling up to a cap."""

    @given(st.integers(0, 10_000))
    def test_bounded_and_growing(self, restarts: int) -> None:
        """Never shorter than the previous delay, never longer than 8 s."""
        assert 0.5 <= restart_delay(restarts) <= 8.0
        assert restart_delay(restarts + 1) >= restart_delay(restarts)


#: Each example builds a few probes (regexes, URLs): fewer examples keep this under seconds.
GENERATED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    """Generated declarations: valid ones parse and round-trip; every cycle is named."""

    @GENERATED
    @given(declarations())
    def test_valid_declarations_are_accepted_and_round_trip(self, data: dict[str, Any]) -> None:
        """Parse, write back as TOML, read and parse again: the same values."""
        stack = parse_stack(data, SOURCE)
        again = parse_stack(tomllib.loads(dumps(stack.to_dict())), SOURCE)
        assert again == stack
        assert parse_stack(stack.to_dict(), SOURCE) == stack
        assert set(stack.order()) == set(stack.names)

    @GENERATED
    @given(declarations())
    def test_pyproject_form_is_the_same(self, data: dict[str, Any]) -> None:
        """The same tables under ``[tool.mirakuru]`` give the same services."""
        text = dumps(data, prefix="tool.mirakuru.")
        nested = tomllib.loads(text)["tool"]["mirakuru"]
        stack = parse_stack(nested, SOURCE, prefix="tool.mirakuru")
        assert stack == parse_stack(data, SOURCE)

    @GENERATED
    @given(declarations(), st.data())
    def test_every_cycle_is_reported(self, data: dict[str, Any], draw: st.DataObject) -> None:
        """Add edges that close cycles: the error names a cycle that really is in the graph."""
        services = data["services"]
        names = list(services)
        low = draw.draw(st.integers(0, len(names) - 1))
        high = draw.draw(st.integers(low, len(names) - 1))
        # An edge from an earlier service to a later one closes a cycle through the later one's
        # path back... so make that path exist: the later depends (started) on the earlier.
        later = services[names[high]]
        deps = later.get("depends_on", {})
        deps = dict.fromkeys(deps, "ready") if isinstance(deps, list) else dict(deps)
        deps.setdefault(names[low], "started")
        later["depends_on"] = deps
        earlier = services[names[low]]
        back = earlier.get("depends_on", {})
        back = dict.fromkeys(back, "ready") if isinstance(back, list) else dict(back)
        back[names[high]] = "started"
        earlier["depends_on"] = back
        with pytest.raises(DependencyCycle) as raised:
            parse_stack(data, SOURCE)
        cycle = raised.value.cycle
        assert cycle[0] == cycle[-1]
        for before, after in itertools.pairwise(cycle):
            table = services[before]["depends_on"]
            assert after in table
        assert raised.value.key == f"services.{cycle[0]}.depends_on.{cycle[1]}"
