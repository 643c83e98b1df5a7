"""What makes a JupyterHub a Bretter Labs hub, wherever it runs.

``jupyterhub_config.py`` (one machine) and ``spawner/blabs_z2jh_config.py`` (the Zero to
JupyterHub chart) differ in networking, storage and the proxy's process; everything else
is set here once, so that the two deployments cannot drift apart.
"""

from .. import culler
from ..resources import templates_dir
from . import metrics, rbac
from .auth import authenticator_class
from .home import lab_cards, lab_seats
from .spawners.options import TemplateChoice


def configure_labs(c, service_env: dict, *, local_labs: bool) -> None:
    """Apply Bretter Labs to a JupyterHub config object ``c``.

    ``service_env`` is the environment of the hub-managed processes (the culler; the blabs
    service is declared by the caller, whose URL differs per deployment). ``local_labs``
    says whether lab folders are on this machine (the local spawner), which only the
    culler's console-disconnect rule needs.
    """
    # Local accounts (default) or single sign-on, from BLABS_AUTH.
    c.JupyterHub.authenticator_class = authenticator_class()
    # CHP counts console traffic as activity; a lab's activity is keyboard and mouse input.
    c.JupyterHub.proxy_class = "blabs_hub.hub.proxy.InputActivityProxy"

    # Pages: our templates first; home-page data read from the catalog per request.
    c.JupyterHub.template_paths = [str(templates_dir())]
    templates = TemplateChoice(config=c)
    c.JupyterHub.template_vars = {
        "blabs_templates": lab_cards(templates),
        "blabs_seats": lab_seats(templates),
    }
    # Levels for /hub/metrics (labs per template, seats, image store), read at scrape time.
    metrics.register(lambda: templates.catalog)

    # Users and permissions.
    c.JupyterHub.custom_scopes = rbac.CUSTOM_SCOPES
    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), *rbac.roles()]

    # Labs: one named server per lab, kept running across hub restarts.
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.cleanup_servers = False

    # Admission (blabs_hub/hub/admission.py) is the one place that limits labs, and its
    # start gate spaces out bursts: JupyterHub's own limits stay off (concurrent_spawn_limit
    # defaults to 100, which would refuse a class burst with a bare 429 before admission).
    c.JupyterHub.active_server_limit = 0
    c.JupyterHub.named_server_limit_per_user = 0
    c.JupyterHub.concurrent_spawn_limit = 0

    # The idle culler: jupyterhub-idle-culler with the live timeout (blabs_hub/culler.py).
    # Least scopes; the lab folder is reachable only for local labs, so only they add
    # admin:server_state (which holds the folder's path).
    c.JupyterHub.services = [*c.JupyterHub.get("services", []), culler.service(service_env)]
    c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, culler.role(local_labs)]
