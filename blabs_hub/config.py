"""Deployment configuration shared by the hub, the blabs service and the CLI.

Every option is a traitlets trait with ``help=``; its default comes from a ``BLABS_*``
environment variable so that the same settings reach the hub process, the hub-managed
service and a lab pod without copying Python config around. A bad value stops the process
at start with one line that names the variable (:func:`check_environment`), before anything
is created on disk or in a database.
"""

import os
import sys
from pathlib import Path

from traitlets import Integer, TraitError, Unicode, default, validate
from traitlets.config import Configurable


class BlabsConfigError(ValueError):
    """A configuration value is unusable; the message names the variable."""


def env_value(name: str, fallback: str) -> str:
    """The raw value of environment variable ``name``, or ``fallback`` when unset or empty."""
    value = os.environ.get(name, "")
    return value if value.strip() else fallback


def env_int(name: str, fallback: int) -> int:
    """Parse ``name`` as an integer, naming the variable when it is not one."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return fallback
    try:
        return int(raw.strip())
    except ValueError:
        raise BlabsConfigError(f"{name}={raw!r} is not a whole number") from None


def check_range(obj, proposal, env: str, low: int, high: int, meaning: str = "") -> int:
    value = proposal["value"]
    if not low <= value <= high:
        trait = f"{type(obj).__name__}.{proposal['trait'].name}"
        extra = f" ({meaning})" if meaning else ""
        raise TraitError(f"{env} / {trait} must be between {low} and {high}{extra}, got {value}")
    return value


class EnvConfigurable(Configurable):
    """A Configurable whose options are all resolved, and validated, when it is created.

    traitlets does not run ``@validate`` on computed defaults; a value that comes from the
    environment must be checked all the same, and at start, not at first use.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in self.trait_names(config=True):
            setattr(self, name, getattr(self, name))


class BlabsPaths(EnvConfigurable):
    """Where Bretter Labs keeps its state on disk."""

    data_dir = Unicode(
        help="""Directory for all local state: the SQLite databases, the cookie secret, the
        image store and the per-lab scratch disks. Created at start if missing.
        Default: ``$BLABS_DATA_DIR`` or ``./data``.""",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self):
        return os.path.abspath(env_value("BLABS_DATA_DIR", "data"))

    images_dir = Unicode(
        help="""The image store: uploaded, verified base disk images (read-only for labs).
        Default: ``$BLABS_IMAGES_DIR`` or ``<data_dir>/images``.""",
    ).tag(config=True)

    @default("images_dir")
    def _default_images_dir(self):
        return os.path.abspath(env_value("BLABS_IMAGES_DIR", os.path.join(self.data_dir, "images")))

    labs_dir = Unicode(
        help="""Scratch space for running labs (overlay disks, sockets, logs), one folder per
        lab, deleted when the lab ends. Default: ``$BLABS_LABS_DIR`` or ``<data_dir>/labs``.""",
    ).tag(config=True)

    @default("labs_dir")
    def _default_labs_dir(self):
        return os.path.abspath(env_value("BLABS_LABS_DIR", os.path.join(self.data_dir, "labs")))

    def ensure(self):
        """Create the directories, or say which one cannot be written."""
        for name in ("data_dir", "images_dir", "labs_dir"):
            path = Path(getattr(self, name))
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise BlabsConfigError(
                    f"BLABS_{name.upper()}={str(path)!r} cannot be created: {e.strerror}"
                ) from None
            if not os.access(path, os.W_OK | os.X_OK):
                raise BlabsConfigError(f"BLABS_{name.upper()}={str(path)!r} is not writable")


class CatalogDatabase(EnvConfigurable):
    """The catalog database: images, templates and the settings row."""

    db_url = Unicode(
        help="""SQLAlchemy URL of the catalog database. The blabs service writes it; the hub
        side (spawners, admission) reads it. In production, point it at the hub's PostgreSQL.
        Default: ``$BLABS_DB_URL`` or SQLite at ``<data_dir>/blabs.sqlite``.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self):
        data_dir = BlabsPaths(config=self.config).data_dir
        return env_value("BLABS_DB_URL", f"sqlite:///{data_dir}/blabs.sqlite")

    @validate("db_url")
    def _validate_db_url(self, proposal):
        value = proposal["value"]
        if "://" not in value:
            raise TraitError(f"BLABS_DB_URL={value!r} is not a database URL (dialect://...)")
        return value


class SettingsDefaults(EnvConfigurable):
    """Initial values of the live settings row.

    These seed the catalog's ``settings`` row when it is first created; after that, admins
    change the live values in the hub's pages or over the REST API without a restart.
    """

    max_concurrent_vms = Integer(
        help="""Labs that may run at once on the whole hub (0 = no new labs).
        Default: ``$BLABS_MAX_CONCURRENT_VMS`` or 20.""",
    ).tag(config=True)

    @default("max_concurrent_vms")
    def _default_max_concurrent_vms(self):
        return env_int("BLABS_MAX_CONCURRENT_VMS", 20)

    @validate("max_concurrent_vms")
    def _validate_max_concurrent_vms(self, proposal):
        return check_range(self, proposal, "BLABS_MAX_CONCURRENT_VMS", 0, 10_000, "0 = no labs")

    per_user_vm_limit = Integer(
        help="""Labs one user may have running or starting at once (0 = no new labs).
        Default: ``$BLABS_PER_USER_VM_LIMIT`` or 1.""",
    ).tag(config=True)

    @default("per_user_vm_limit")
    def _default_per_user_vm_limit(self):
        return env_int("BLABS_PER_USER_VM_LIMIT", 1)

    @validate("per_user_vm_limit")
    def _validate_per_user_vm_limit(self, proposal):
        return check_range(self, proposal, "BLABS_PER_USER_VM_LIMIT", 0, 100, "0 = no labs")

    max_concurrent_starts = Integer(
        help="""Labs that may be *starting* at once on the whole hub; more wait in line,
        first come first served, and see their place on the spawn page (running labs are
        limited by ``max_concurrent_vms``). Default: ``$BLABS_MAX_CONCURRENT_STARTS`` or 20.""",
    ).tag(config=True)

    @default("max_concurrent_starts")
    def _default_max_concurrent_starts(self):
        return env_int("BLABS_MAX_CONCURRENT_STARTS", 20)

    @validate("max_concurrent_starts")
    def _validate_max_concurrent_starts(self, proposal):
        return check_range(self, proposal, "BLABS_MAX_CONCURRENT_STARTS", 1, 10_000)

    idle_timeout_minutes = Integer(
        help="""Minutes without keyboard or mouse input after which a lab is stopped and its
        disk destroyed. Default: ``$BLABS_IDLE_TIMEOUT_MINUTES`` or 30.""",
    ).tag(config=True)

    @default("idle_timeout_minutes")
    def _default_idle_timeout_minutes(self):
        return env_int("BLABS_IDLE_TIMEOUT_MINUTES", 30)

    @validate("idle_timeout_minutes")
    def _validate_idle_timeout_minutes(self, proposal):
        return check_range(self, proposal, "BLABS_IDLE_TIMEOUT_MINUTES", 1, 7 * 24 * 60)

    reaper_interval_seconds = Integer(
        help="""Seconds between two idle-culling passes.
        Default: ``$BLABS_REAPER_INTERVAL_SECONDS`` or 60.""",
    ).tag(config=True)

    @default("reaper_interval_seconds")
    def _default_reaper_interval_seconds(self):
        return env_int("BLABS_REAPER_INTERVAL_SECONDS", 60)

    @validate("reaper_interval_seconds")
    def _validate_reaper_interval_seconds(self, proposal):
        return check_range(self, proposal, "BLABS_REAPER_INTERVAL_SECONDS", 5, 3600)


class HubNetwork(EnvConfigurable):
    """Ports of the processes a one-machine deployment runs, all on loopback by default."""

    ip = Unicode(
        help="Address the proxy listens on. Default: ``$BLABS_IP`` or 127.0.0.1.",
    ).tag(config=True)

    @default("ip")
    def _default_ip(self):
        return env_value("BLABS_IP", "127.0.0.1")

    port = Integer(help="Public port of the proxy. Default: ``$BLABS_PORT`` or 8000.").tag(
        config=True
    )

    @default("port")
    def _default_port(self):
        return env_int("BLABS_PORT", 8000)

    hub_port = Integer(help="The hub's own port. Default: ``$BLABS_HUB_PORT`` or 8081.").tag(
        config=True
    )

    @default("hub_port")
    def _default_hub_port(self):
        return env_int("BLABS_HUB_PORT", 8081)

    proxy_api_port = Integer(
        help="The proxy's REST API port. Default: ``$BLABS_PROXY_API_PORT`` or 8001.",
    ).tag(config=True)

    @default("proxy_api_port")
    def _default_proxy_api_port(self):
        return env_int("BLABS_PROXY_API_PORT", 8001)

    service_port = Integer(
        help="Port of the blabs service. Default: ``$BLABS_SERVICE_PORT`` or 8082.",
    ).tag(config=True)

    @default("service_port")
    def _default_service_port(self):
        return env_int("BLABS_SERVICE_PORT", 8082)

    @validate("port", "hub_port", "proxy_api_port", "service_port")
    def _validate_port(self, proposal):
        env = "BLABS_" + proposal["trait"].name.upper()
        return check_range(self, proposal, env, 1, 65535)


CONFIGURABLES = (BlabsPaths, CatalogDatabase, SettingsDefaults, HubNetwork)


def check_environment(config=None, extra=()) -> dict:
    """Resolve every option once, or exit with one line naming the bad variable.

    Returns ``{class name: configurable}`` for :data:`CONFIGURABLES` and the ``extra``
    classes. Called by ``jupyterhub_config.py`` before any directory or database is
    touched, so that a typo never leaves a half-created deployment.
    """
    resolved = {}
    try:
        for cls in (*CONFIGURABLES, *extra):
            resolved[cls.__name__] = cls(config=config)
    except (BlabsConfigError, TraitError) as e:
        print(f"blabs: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return resolved
