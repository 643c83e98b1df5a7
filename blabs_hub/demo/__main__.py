"""``make demo``: build the demo guest, seed the catalog, start the hub in the foreground."""

import os
import signal
import sys
from pathlib import Path

from ..catalog import Catalog
from ..config import check_environment
from ..resources import REPO
from .guest import ensure_demo_image
from .seed import seed_demo


def main() -> None:
    resolved = check_environment()
    paths = resolved["BlabsPaths"]
    network = resolved["HubNetwork"]
    paths.ensure()
    cache_dir = Path(os.environ.get("BLABS_CACHE_DIR") or REPO / ".cache")
    print("demo: building the demo guest from Debian packages (cached after the first time)")
    image = ensure_demo_image(cache_dir)
    catalog = Catalog(resolved["CatalogDatabase"].db_url)
    catalog.upgrade()
    catalog.seed_settings(resolved["SettingsDefaults"])
    seed_demo(catalog, Path(paths.images_dir), image)
    catalog.dispose()

    url = f"http://{network.ip}:{network.port}/"
    password = os.environ.get("BLABS_INITIAL_ADMIN_PASSWORD") or "admin"
    print(
        f"\n  Bretter Labs is starting at {url}\n"
        f"  First login: user 'admin', password '{password}' (you will be asked to change it)\n"
        f"  Stop with Ctrl-C (running labs stop with it).\n",
        flush=True,
    )
    # The hub must see Ctrl-C itself; nothing of ours stays in between.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    hub = str(Path(sys.executable).parent / "jupyterhub")
    # A demo's labs end with it; a deployed hub leaves them running across restarts.
    os.execv(
        hub, [hub, "-f", str(REPO / "jupyterhub_config.py"), "--JupyterHub.cleanup_servers=True"]
    )


if __name__ == "__main__":
    main()
