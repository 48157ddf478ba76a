"""Shared test set-up. Fixture modules of each area are listed in pytest_plugins."""

pytest_plugins: list[str] = [
    "tests.fixtures.postgres",
    "tests.fixtures.app",
    "tests.fixtures.redis",
    "tests.fixtures.simulators",
    "tests.fixtures.checks",
    "tests.fixtures.hostile_servers",
    "tests.fixtures.engine",
    "tests.fixtures.microsoft",
    "tests.fixtures.graph_connector",
    "tests.fixtures.superoffice",
    "tests.fixtures.superoffice_connector",
    "tests.fixtures.superoffice_m365",
    "tests.fixtures.google",
    "tests.fixtures.exchange",
    "tests.fixtures.ews_connector",
]
