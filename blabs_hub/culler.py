"""The idle culler: jupyterhub-idle-culler's ``cull_idle`` with the live timeout, as a service.

Run by the hub as a managed service (``python -m blabs_hub.culler``). Every cycle it reads
``idle_timeout_minutes`` from the catalog's settings row and calls the library's
``cull_idle`` coroutine with it — the culling itself is the library's, not ours. Culled
labs are *removed* (named servers deleted), and a lab's stop destroys its disk.

Idle means no keyboard or mouse input: the lab's console reports only input to the hub, so
``last_activity`` is "last input". The ``cull_arbiter`` adds two rules:

- a template's ``max_session_minutes``: the lab ends that long after it started, whatever
  its activity. The spawner tells the lab its end time, and the lab's console counts down
  to it in a banner (:mod:`blabs_hub.lab.console.status`); the culler only ends it;
- "no console connected for N minutes" (``BLABS_CULL_DISCONNECTED_MINUTES``, 0 = off), from
  the console's connect/disconnect records (``console.jsonl`` in the lab folder).

The disconnect rule needs the folder: the culler finds it in the server's state
(``lab_dir``, scope ``admin:server_state``), which the local spawner records. On Kubernetes
the folder is inside the pod: there this rule is skipped (the role does not get the scope)
and the max-session limit and idle timeout still apply. The decisions are pure functions;
:func:`main` is the shell.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jupyterhub_idle_culler import cull_idle
from sqlalchemy import select
from traitlets import Integer, default, validate

from .catalog import Catalog, Template
from .config import CatalogDatabase, EnvConfigurable, SettingsDefaults, check_range, env_int
from .lab.spec import LabPaths
from .usage.reasons import CULLER_VERDICTS
from .usage.record import record_stop_intent

log = logging.getLogger("blabs.culler")


class CullerSettings(EnvConfigurable):
    """The idle culler's own options (the idle timeout itself is a live setting)."""

    disconnected_minutes = Integer(
        help="""Stop a lab whose console has had no browser connected for this many minutes,
        even if the idle timeout is longer (0 = off). Needs the lab folder: local labs only.
        Default: ``$BLABS_CULL_DISCONNECTED_MINUTES`` or 0.""",
    ).tag(config=True)

    @default("disconnected_minutes")
    def _default_disconnected_minutes(self):
        return env_int("BLABS_CULL_DISCONNECTED_MINUTES", 0)

    @validate("disconnected_minutes")
    def _validate_disconnected_minutes(self, proposal):
        return check_range(self, proposal, "BLABS_CULL_DISCONNECTED_MINUTES", 0, 7 * 24 * 60)

    warning_minutes = Integer(
        help="""Minutes before a template's maximum session length ends a lab when the
        console starts showing a countdown banner (0 = no banner); the spawners pass it to
        the lab. Default: ``$BLABS_SESSION_WARNING_MINUTES`` or 5.""",
    ).tag(config=True)

    @default("warning_minutes")
    def _default_warning_minutes(self):
        return env_int("BLABS_SESSION_WARNING_MINUTES", 5)

    @validate("warning_minutes")
    def _validate_warning_minutes(self, proposal):
        return check_range(self, proposal, "BLABS_SESSION_WARNING_MINUTES", 0, 24 * 60)


# --- pure decisions -------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def template_slug(server: dict) -> str:
    """The lab's template: ``user_options.template``, else the server's name (as spawners do)."""
    slug = (server.get("user_options") or {}).get("template") or server.get("name") or ""
    return slug[0] if isinstance(slug, list) and slug else str(slug)


def session_age(server: dict, now: datetime) -> timedelta | None:
    started = parse_time(server.get("started"))
    return None if started is None else now - started


def disconnected_for(events: list[dict], started: datetime, now: datetime) -> timedelta | None:
    """How long no console has been connected; None while one is (or was never recorded).

    Connects and disconnects are counted (several tabs may be open); with none open, the
    time since the last of them — or since the lab started, if no one ever connected.
    """
    open_ = 0
    last = started
    for event in events:
        kind = event.get("event")
        if kind not in ("connect", "disconnect"):
            continue
        open_ += 1 if kind == "connect" else -1
        last = parse_time(event.get("time")) or last
    return None if open_ > 0 else now - last


def verdict(
    *,
    inactive: timedelta,
    inactive_limit: float,
    age: timedelta | None,
    max_session_minutes: int | None,
    disconnected: timedelta | None,
    disconnected_minutes: int,
) -> str | None:
    """Why to cull this lab ("idle", "session", "disconnected"), or None to keep it."""
    if inactive.total_seconds() >= inactive_limit:
        return "idle"
    if max_session_minutes and age is not None and age >= timedelta(minutes=max_session_minutes):
        return "session"
    gone = disconnected is not None and disconnected >= timedelta(minutes=disconnected_minutes)
    if disconnected_minutes and gone:
        return "disconnected"
    return None


# --- the lab folder (local labs) ------------------------------------------------------------


def lab_folder(server: dict) -> LabPaths | None:
    lab_dir = (server.get("state") or {}).get("lab_dir")
    return LabPaths(Path(lab_dir)) if lab_dir and Path(lab_dir).is_dir() else None


def read_console_events(paths: LabPaths) -> list[dict]:
    try:
        lines = paths.console_events.read_text(errors="replace").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return events


class Arbiter:
    """The ``cull_arbiter`` for one cycle: the library's idle rule plus ours."""

    def __init__(
        self,
        max_sessions: dict[str, int | None],
        settings: CullerSettings,
        catalog: Catalog | None = None,
    ):
        self.max_sessions = max_sessions
        self.settings = settings
        self.catalog = catalog

    def __call__(self, *, inactive, inactive_limit, server, **_kw) -> bool:
        now = datetime.now(UTC)
        age = session_age(server, now)
        max_minutes = self.max_sessions.get(template_slug(server))
        paths = lab_folder(server)
        disconnected = None
        if paths is not None and self.settings.disconnected_minutes and age is not None:
            disconnected = disconnected_for(read_console_events(paths), now - age, now)
        reason = verdict(
            inactive=inactive,
            inactive_limit=inactive_limit,
            age=age,
            max_session_minutes=max_minutes,
            disconnected=disconnected,
            disconnected_minutes=self.settings.disconnected_minutes,
        )
        if reason:
            log.info("Culling %s: %s", server.get("url"), reason)
            self._record_intent(server, reason)
            return True
        return False

    def _record_intent(self, server: dict, reason: str) -> None:
        """Tell the usage report why this lab is about to stop (idle or max session)."""
        user, _, name = server.get("full_name", "").partition("/")
        if self.catalog is None or not user:
            return
        try:
            record_stop_intent(self.catalog, user, name, CULLER_VERDICTS[reason])
        except Exception:  # the report's reason is worth less than the cull itself
            log.exception("Could not record why %s is culled", server.get("full_name"))


# --- the service ------------------------------------------------------------------------------

SERVICE_NAME = "blabs-culler"
# Least scopes: see users' servers and their activity, stop and remove them.
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def service(environment: dict) -> dict:
    """The ``JupyterHub.services`` entry (both deployments: jupyterhub_config.py and z2jh)."""
    return {
        "name": SERVICE_NAME,
        "command": [sys.executable, "-m", "blabs_hub.culler"],
        "environment": environment,
    }


def role(lab_folders_visible: bool) -> dict:
    """The culler's role. ``admin:server_state`` (it holds the lab folder's path) only where
    the folder is on this machine (local labs): elsewhere the folder rules are skipped."""
    extra = ["admin:server_state"] if lab_folders_visible else []
    return {
        "name": SERVICE_NAME,
        "description": "Stop and remove labs idle (no input) longer than the live timeout.",
        "scopes": [*SCOPES, *extra],
        "services": [SERVICE_NAME],
    }


def max_sessions(catalog: Catalog) -> dict[str, int | None]:
    with catalog.session() as db:
        rows = db.execute(select(Template.slug, Template.max_session_minutes)).all()
    return {slug: minutes for slug, minutes in rows}


async def cull_once(catalog: Catalog, arbiter: Arbiter, url: str, token: str) -> None:
    """One pass: the current idle timeout and templates, then the library's ``cull_idle``."""
    timeout_minutes = catalog.settings().idle_timeout_minutes
    arbiter.max_sessions = max_sessions(catalog)
    await cull_idle(
        url=url,
        api_token=token,
        inactive_limit=timeout_minutes * 60,
        logger=log,
        remove_named_servers=True,
        cull_admin_users=True,
        cull_arbiter=arbiter,
        concurrency=10,
    )


async def run(interval: float, catalog: Catalog, settings: CullerSettings) -> None:
    """Cull every ``interval`` seconds until SIGINT or SIGTERM, which end it at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    arbiter = Arbiter({}, settings, catalog)
    log.info("Culling every %s s; idle timeout from the catalog each cycle", interval)
    while not stop.is_set():
        cycle = asyncio.ensure_future(cull_once(catalog, arbiter, url, token))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not cycle.done():
            cycle.cancel()
            break
        stopping.cancel()
        if cycle.exception():
            log.error("Cull cycle failed: %s", cycle.exception())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    log.info("Culler stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s culler] %(message)s")
    try:
        interval = SettingsDefaults().reaper_interval_seconds
        settings = CullerSettings()
        db_url = CatalogDatabase().db_url
    except Exception as e:
        sys.exit(f"blabs culler: configuration error: {e}")
    catalog = Catalog(db_url)
    try:
        asyncio.run(run(interval, catalog, settings))
    finally:
        catalog.dispose()


if __name__ == "__main__":
    main()
