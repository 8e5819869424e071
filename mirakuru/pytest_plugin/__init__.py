"""The pytest plugin: declare a service in conftest.py, get a started executor as a fixture.

Loaded in every pytest run once mirakuru is installed, so it imports only pytest at the top
and touches nothing unless a fixture made by :func:`service_fixture` is used. Its parts:
``declaration`` (what a conftest writes), ``registry`` (this run's services and the xdist
workers sharing them), ``shared`` (one service for all workers) and ``reports`` (what a
failed test's report says) and ``reuse`` (services kept between runs).
"""

from __future__ import annotations

from mirakuru.pytest_plugin.declaration import ReadySpec as ReadySpec
from mirakuru.pytest_plugin.declaration import Scope as Scope
from mirakuru.pytest_plugin.declaration import Service, ServiceFixture, service_fixture
from mirakuru.pytest_plugin.registry import Services

# pytest finds a plugin's hooks and fixtures among the module's attributes: these names must
# be attributes of this module, not only of the modules that define them.
from mirakuru.pytest_plugin.registry import mirakuru_services as mirakuru_services
from mirakuru.pytest_plugin.registry import pytest_collection_finish as pytest_collection_finish
from mirakuru.pytest_plugin.registry import pytest_runtest_teardown as pytest_runtest_teardown
from mirakuru.pytest_plugin.registry import pytest_sessionfinish as pytest_sessionfinish
from mirakuru.pytest_plugin.reports import describe_service
from mirakuru.pytest_plugin.reports import pytest_runtest_makereport as pytest_runtest_makereport
from mirakuru.pytest_plugin.reports import pytest_runtest_setup as pytest_runtest_setup
from mirakuru.pytest_plugin.reuse import pytest_addoption as pytest_addoption
from mirakuru.pytest_plugin.reuse import pytest_configure as pytest_configure
from mirakuru.pytest_plugin.reuse import pytest_terminal_summary as pytest_terminal_summary
from mirakuru.pytest_plugin.reuse import pytest_testnodedown as pytest_testnodedown
from mirakuru.pytest_plugin.stacks import stack_fixture

__all__ = [
    "Service",
    "ServiceFixture",
    "Services",
    "describe_service",
    "service_fixture",
    "stack_fixture",
]
