"""Bretter Labs' Prometheus series, served by the hub's own ``/hub/metrics``.

JupyterHub serves prometheus_client's default registry, so series defined here appear
there with no handler of ours. Events (starts, failures, stops, spawn stages) are counted
by the lifecycle hooks; levels (labs running per template, seats in use vs the limit, the
image store's size) are read when Prometheus scrapes, by :class:`LabsCollector`, so they
are never stale and need no timer.
"""

import logging

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from ..catalog import Image
from . import admission

log = logging.getLogger("blabs.metrics")

LAB_STARTS = Counter(
    "blabs_lab_starts_total", "Labs whose console became ready, by template.", ["template"]
)
LAB_START_FAILURES = Counter(
    "blabs_lab_start_failures_total",
    "Lab starts refused or failed, by template and reason (admission refusals: closed, "
    "user-closed, full, user-limit; else timeout, bad-request, cancelled, error).",
    ["template", "reason"],
)
LAB_STOPS = Counter(
    "blabs_lab_stops_total",
    "Labs stopped, by template and reason (user, idle, max-session, admin, failure, unknown).",
    ["template", "reason"],
)
SPAWN_DURATION = Histogram(
    "blabs_lab_spawn_duration_seconds",
    "Seconds a lab spent in each start stage (from the launcher's status.jsonl); "
    "stage=total is the hub's whole spawn.",
    ["stage"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)


def stage_durations(stages: list[dict]) -> dict[str, float]:
    """Seconds spent in each stage: from its line's time to the next line's (pure)."""
    out: dict[str, float] = {}
    for here, after in zip(stages, stages[1:], strict=False):
        try:
            seconds = float(after["time"]) - float(here["time"])
        except (KeyError, TypeError, ValueError):
            continue
        name = str(here.get("stage", "unknown"))
        out[name] = out.get(name, 0.0) + max(0.0, seconds)
    return out


def lab_template(spawner) -> str:
    options = getattr(spawner, "user_options", None) or {}
    slug = options.get("profile") or options.get("template") or spawner.name
    if isinstance(slug, list) and slug:
        slug = slug[0]
    return str(slug)


def running_per_template(users) -> dict[str, int]:
    """Ready labs per template across the hub's users."""
    counts: dict[str, int] = {}
    for user in users:
        for name, spawner in list(user.spawners.items()):
            if name and spawner.ready:
                slug = lab_template(spawner)
                counts[slug] = counts.get(slug, 0) + 1
    return counts


class LabsCollector:
    """Levels read at scrape time from the hub's memory and the catalog."""

    def __init__(self, catalog_source, users_source=admission.hub_users):
        self._catalog_source = catalog_source  # a callable: () -> Catalog
        self._users = users_source

    def describe(self):
        return []  # no describe-time collection: the hub may not be up yet

    def collect(self):
        running = GaugeMetricFamily(
            "blabs_labs_running", "Labs with a ready console, by template.", labels=["template"]
        )
        seats = GaugeMetricFamily(
            "blabs_seats_in_use", "Labs holding a seat (starting after admission, running)."
        )
        limit = GaugeMetricFamily("blabs_seats_limit", "The live max_concurrent_vms setting.")
        per_user = GaugeMetricFamily(
            "blabs_per_user_lab_limit", "The live per_user_vm_limit setting."
        )
        store = GaugeMetricFamily(
            "blabs_image_store_bytes", "Bytes of ready images in the image store."
        )
        try:
            users = list(self._users())
            for slug, n in sorted(running_per_template(users).items()):
                running.add_metric([slug], n)
            seats.add_metric([], admission.count_seats(users, "", exclude=None).total)
        except Exception:
            log.exception("blabs metrics: cannot read the hub's labs")
        try:
            catalog = self._catalog_source()
            settings = catalog.settings()
            limit.add_metric([], settings.max_concurrent_vms)
            per_user.add_metric([], settings.per_user_vm_limit)
            with catalog.session() as db:
                total = db.execute(
                    select(func.coalesce(func.sum(Image.actual_size), 0)).where(
                        Image.status == "ready"
                    )
                ).scalar_one()
            store.add_metric([], int(total))
        except Exception:
            log.exception("blabs metrics: cannot read the catalog")
        yield from (running, seats, limit, per_user, store)


_registered: list[LabsCollector] = []


def register(catalog_source) -> None:
    """Add the level collector to the default registry, once per process."""
    if _registered:
        return
    collector = LabsCollector(catalog_source)
    REGISTRY.register(collector)
    _registered.append(collector)
