"""A Redis server per test session, on a free port, ready once it accepts connections."""

from mirakuru import probes
from mirakuru.pytest_plugin import service_fixture

redis = service_fixture(
    "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no",
    lambda port: probes.all_of(
        probes.tcp("127.0.0.1", port),
        probes.banner("Ready to accept connections"),
    ),
)
