"""Catalog schema upgrades keep what is in the database."""

import sqlite3

from alembic import command

from blabs_hub import dbutil
from blabs_hub.catalog import MIGRATIONS, VERSION_TABLE, Catalog


def test_the_start_gate_setting_is_added_to_an_existing_settings_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'blabs.sqlite'}"
    engine = dbutil.make_engine(url)
    config = dbutil.alembic_config(MIGRATIONS, url, VERSION_TABLE)
    with engine.begin() as connection:  # as dbutil.upgrade does, but to the older revision
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    engine.dispose()
    with sqlite3.connect(tmp_path / "blabs.sqlite") as db:
        db.execute(
            "insert into blabs_settings (id, max_concurrent_vms, per_user_vm_limit, "
            "idle_timeout_minutes, updated_at) values (1, 40, 2, 45, '2026-11-01')"
        )
    catalog = Catalog(url)
    try:
        catalog.upgrade()
        row = catalog.settings()
        assert (row.max_concurrent_vms, row.per_user_vm_limit, row.idle_timeout_minutes) == (
            40,
            2,
            45,
        )
        assert row.max_concurrent_starts == 20
    finally:
        catalog.dispose()
