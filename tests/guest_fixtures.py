"""Session fixtures for tests that boot the real demo guest (registered via pytest_plugins).

The image is built once from Debian packages (``blabs_hub.demo.guest``) into
``$BLABS_CACHE_DIR`` or ``<repo>/.cache`` and reused by later runs.
"""

import pytest

from blabs_hub.demo.guest import DemoBuildError, ensure_demo_image
from blabs_hub.lab.config import default_cache_dir


@pytest.fixture(scope="session")
def demo_image():
    """Path of the demo guest's qcow2 base image (read-only for tests: boot it via overlays)."""
    try:
        return ensure_demo_image(default_cache_dir())
    except DemoBuildError as e:
        pytest.fail(f"cannot build the demo guest image: {e}")
