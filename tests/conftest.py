"""Session-wide real services; see ``tests/harness.py`` for how each one starts and stops."""

import pytest

from tests.harness import REPO, PostgresCluster, RunningHub

# The demo guest, built once per session from Debian packages (cached in .cache/).
pytest_plugins = ["tests.guest_fixtures"]


@pytest.fixture(scope="session")
def hub_factory(tmp_path_factory):
    """Start real hubs: ``hub_factory.start(extra_config="...", env={...})``.

    Each hub gets its own folder and free ports; all are stopped at the end of the session.
    """

    class Factory:
        def __init__(self):
            self.hubs: list[RunningHub] = []

        def create(self, extra_config: str = "", env: dict | None = None) -> RunningHub:
            hub = RunningHub(tmp_path_factory.mktemp("hub"), extra_config, env or {})
            self.hubs.append(hub)
            return hub

        def start(self, extra_config: str = "", env: dict | None = None) -> RunningHub:
            return self.create(extra_config, env).start()

    factory = Factory()
    yield factory
    for hub in factory.hubs:
        hub.close()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL 15 cluster for the session; ``postgres.new_database()``."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


# Debian's Chromium, driven by Playwright; never a downloaded browser.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests; each test opens its own context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts():
    """Where tests keep screenshots and logs for people to look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
