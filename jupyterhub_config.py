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
from blabs_hub import culler
from blabs_hub.catalog import Catalog
from blabs_hub.culler import CullerSettings
from blabs_hub.hub import metrics as blabs_metrics
from blabs_hub.hub import rbac
from blabs_hub.hub.auth import authenticator_class
from blabs_hub.hub.home import lab_cards, lab_seats
from blabs_hub.hub.spawners.options import TemplateChoice
from blabs_hub.hub.startgate import LabStartGate
from blabs_hub.images.config import ImageStore
from blabs_hub.lab.config import LabRuntime
from blabs_hub.resources import chp_command, templates_dir

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

# Options of the parts the hub starts (uploads in the service, labs on this machine) are
# checked here too, so that a bad one stops the hub rather than a lab later.
resolved = blabs_config.check_environment(
    c, extra=(ImageStore, LabRuntime, LabStartGate, CullerSettings)
)
paths = resolved["BlabsPaths"]
network = resolved["HubNetwork"]
db_url = resolved["CatalogDatabase"].db_url
try:
    paths.ensure()
    # Local accounts (default) or single sign-on, from BLABS_AUTH.
    c.JupyterHub.authenticator_class = authenticator_class()
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
# CHP counts console traffic as activity; a lab's activity is keyboard and mouse input.
c.JupyterHub.proxy_class = "blabs_hub.hub.proxy.InputActivityProxy"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{network.proxy_api_port}"
c.ConfigurableHTTPProxy.command = chp_command()
c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")
c.JupyterHub.db_url = (
    os.environ.get("BLABS_HUB_DB_URL") or f"sqlite:///{data_dir}/jupyterhub.sqlite"
)
c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
c.JupyterHub.template_paths = [str(templates_dir())]
template_choice = TemplateChoice(config=c)
c.JupyterHub.template_vars = {
    "blabs_templates": lab_cards(template_choice),
    "blabs_seats": lab_seats(template_choice),
}
# Levels for /hub/metrics (labs per template, seats, image store), read at scrape time.
blabs_metrics.register(lambda: template_choice.catalog)

# --- users and permissions ----------------------------------------------------------------
c.JupyterHub.custom_scopes = rbac.CUSTOM_SCOPES
c.JupyterHub.load_roles = rbac.roles()

# --- labs: one named server per lab, kept running across hub restarts ---------------------
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = False
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

# --- the idle culler: jupyterhub-idle-culler with the live timeout (blabs_hub/culler.py) ----
# Least scopes; the lab folder (console connects, the session-end banner) is reachable only
# for local labs, so only they add admin:server_state (which holds the folder's path).
c.JupyterHub.services.append(culler.service(service_env))
c.JupyterHub.load_roles.append(culler.role(c.JupyterHub.spawner_class == "blabs-local"))
# Admission (blabs_hub/hub/admission.py) is the one place that limits labs, and its start
# gate spaces out bursts: JupyterHub's own limits stay off (concurrent_spawn_limit defaults
# to 100, which would refuse a class burst with a bare 429 before admission runs).
c.JupyterHub.active_server_limit = 0
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.concurrent_spawn_limit = 0

# --- site additions, last -------------------------------------------------------------------
config_d = Path(os.environ.get("BLABS_CONFIG_D") or Path(__file__).parent / "jupyterhub_config.d")
if config_d.is_dir():
    for extra in sorted(config_d.glob("*.py")):
        load_subconfig(str(extra))  # noqa: F821
