"""Bretter Labs inside the Zero to JupyterHub chart's hub pod.

The hub image (``Dockerfile.hub``) copies this file to
``/usr/local/etc/jupyterhub/jupyterhub_config.d/50-blabs.py``; the chart's own
``jupyterhub_config.py`` loads it after applying the Helm values. The chart keeps owning
networking, the proxy, the database and KubeSpawner's values; this adds what Bretter Labs
is: the lab spawner, named servers kept across restarts, the RBAC scopes and roles, the
pages, the catalog migration, and the OAuth scopes of the ``blabs`` service declared in
``hub.services`` of the values. Options are ``BLABS_*`` variables (``hub.extraEnv``).
"""

import os
import sys

from blabs_hub import config as blabs_config
from blabs_hub.catalog import Catalog
from blabs_hub.hub import rbac
from blabs_hub.hub.setup import configure_labs

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

try:
    catalog = Catalog(blabs_config.CatalogDatabase(config=c).db_url)
    catalog.upgrade()
    catalog.seed_settings(blabs_config.SettingsDefaults(config=c))
    catalog.dispose()
except (blabs_config.BlabsConfigError, ValueError) as e:
    sys.exit(f"blabs: configuration error: {e}")

c.JupyterHub.spawner_class = "blabs-kube"
# Everything else a Bretter Labs hub is (authenticator, input-only activity, pages, roles,
# named servers kept across a helm upgrade, admission instead of JupyterHub's limits, the
# culler), as on one machine. Lab folders live in the pods: no folder rules for the culler.
service_env = {k: v for k, v in os.environ.items() if k.startswith("BLABS_")}
try:
    configure_labs(c, service_env, local_labs=False)
except blabs_config.BlabsConfigError as e:
    sys.exit(f"blabs: configuration error: {e}")

for service in c.JupyterHub.services:
    if service.get("name") == rbac.SERVICE_NAME:
        service.setdefault("command", [sys.executable, "-m", "blabs_hub.service"])
        service.setdefault("oauth_no_confirm", True)
        service["oauth_client_allowed_scopes"] = rbac.SERVICE_OAUTH_SCOPES
