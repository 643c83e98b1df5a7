"""``/api/settings``: the live limits in the one settings row.

The hub side reads the row when it admits a lab and the culler reads the idle timeout each
cycle, so a change here applies without a restart.
"""

from ...catalog import Settings
from ...catalog.rules import SETTINGS_BOUNDS, validate_settings
from ...config import SettingsDefaults
from .common import SETTINGS, APIHandler, raise_first

NOTES = {key: meaning for key, (_low, _high, meaning) in SETTINGS_BOUNDS.items()}


def settings_json(row: Settings) -> dict:
    return {
        **{key: getattr(row, key) for key in SETTINGS_BOUNDS},
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
        "notes": NOTES,
        "bounds": {k: {"min": lo, "max": hi} for k, (lo, hi, _m) in SETTINGS_BOUNDS.items()},
    }


def below_cull_interval(clean: dict, interval_seconds: int) -> list[dict]:
    """A timeout the culler cannot honour: it only looks every ``interval_seconds``."""
    minutes = clean.get("idle_timeout_minutes")
    if minutes is None or minutes * 60 >= interval_seconds:
        return []
    return [
        {
            "field": "idle_timeout_minutes",
            "message": f"idle_timeout_minutes must be at least the cull interval "
            f"(BLABS_REAPER_INTERVAL_SECONDS = {interval_seconds} s), got {minutes}",
        }
    ]


class SettingsHandler(APIHandler):
    def get(self):
        self.require_scope(SETTINGS)
        self.write_json(settings_json(self.catalog.settings()))

    def patch(self):
        user = self.require_scope(SETTINGS)
        clean, errors = validate_settings(self.json_body())
        errors += below_cull_interval(clean, SettingsDefaults().reaper_interval_seconds)
        raise_first(errors)
        with self.catalog.session() as db, db.begin():
            row = db.get(Settings, 1)
            for key, value in clean.items():
                setattr(row, key, value)
            row.updated_by = user["name"]
        self.write_json(settings_json(self.catalog.settings()))

    put = patch


def settings_routes(at) -> list:
    return [(at("api/settings"), SettingsHandler)]
