from mirakuru.pytest_plugin import stack_fixture

# The api service of mirakuru.toml, started after files (ready) and seed (completed).
api = stack_fixture("api")
