"""Bretter Labs on JupyterHub.

Runs on one machine with no edits (``make demo``): everything on 127.0.0.1, state under
``$BLABS_DATA_DIR``, labs as local processes. In a Kubernetes cluster (or with
``BLABS_SPAWNER=kube``) labs become pods. Every ``BLABS_*`` variable is described in the
README; a bad one stops the hub here, with one line naming it, before anything is created.

Site-specific additions go in ``jupyterhub_config.d/*.py`` beside this file (or in
``$BLABS_CONFIG_D``), loaded last, as in the Zero to JupyterHub chart.
"""

import os
import sys
from pathlib import Path

from blabs_hub import config as blabs_config
from blabs_hub.catalog import Catalog
from blabs_hub.culler import CullerSettings
from blabs_hub.hub import rbac
from blabs_hub.hub.setup import configure_labs
from blabs_hub.images.config import ImageStore
from blabs_hub.lab.config import LabRuntime
from blabs_hub.resources import chp_command

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

# Options of the parts the hub starts (uploads in the service, labs on this machine) are
# checked here too, so that a bad one stops the hub rather than a lab later.
resolved = blabs_config.check_environment(c, extra=(ImageStore, LabRuntime, CullerSettings))
paths = resolved["BlabsPaths"]
network = resolved["HubNetwork"]
db_url = resolved["CatalogDatabase"].db_url
try:
    paths.ensure()
except blabs_config.BlabsConfigError as e:
    sys.exit(f"blabs: configuration error: {e}")
data_dir = Path(paths.data_dir)

# The catalog is migrated here, in the one process that starts before all others.
catalog = Catalog(db_url)
catalog.upgrade()
catalog.seed_settings(resolved["SettingsDefaults"])
catalog.dispose()

# --- the hub and its proxy, on loopback -------------------------------------------------
c.JupyterHub.ip = network.ip
c.JupyterHub.port = network.port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = network.hub_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{network.proxy_api_port}"
c.ConfigurableHTTPProxy.command = chp_command()
c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")
c.JupyterHub.db_url = (
    os.environ.get("BLABS_HUB_DB_URL") or f"sqlite:///{data_dir}/jupyterhub.sqlite"
)
c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")

# --- labs: local processes on one machine, pods in a cluster -------------------------------
in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
c.JupyterHub.spawner_class = os.environ.get("BLABS_SPAWNER") or (
    "blabs-kube" if in_cluster else "blabs-local"
)
if os.geteuid() == 0:
    # Root is how containers and CI run; a one-machine lab server refuses root without this.
    c.Spawner.args = ["--allow-root"]

# --- the blabs service: catalog API, admin pages, uploads ----------------------------------
# Every BLABS_* setting reaches the service (JupyterHub passes it only what is listed).
service_env = {
    **{k: v for k, v in os.environ.items() if k.startswith("BLABS_")},
    "BLABS_DATA_DIR": paths.data_dir,
    "BLABS_IMAGES_DIR": paths.images_dir,
    "BLABS_LABS_DIR": paths.labs_dir,
    "BLABS_DB_URL": db_url,
    "PYTHONUNBUFFERED": "1",
}
c.JupyterHub.services = [
    {
        "name": rbac.SERVICE_NAME,
        "display": True,
        "url": f"http://127.0.0.1:{network.service_port}",
        "command": [sys.executable, "-m", "blabs_hub.service"],
        "environment": service_env,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": rbac.SERVICE_OAUTH_SCOPES,
    }
]

# --- what makes this a Bretter Labs hub (shared with the z2jh chart's config) -------------
try:
    configure_labs(c, service_env, local_labs=c.JupyterHub.spawner_class == "blabs-local")
except blabs_config.BlabsConfigError as e:
    sys.exit(f"blabs: configuration error: {e}")

# --- site additions, last -------------------------------------------------------------------
config_d = Path(os.environ.get("BLABS_CONFIG_D") or Path(__file__).parent / "jupyterhub_config.d")
if config_d.is_dir():
    for extra in sorted(config_d.glob("*.py")):
        load_subconfig(str(extra))  # noqa: F821
