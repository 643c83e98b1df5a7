"""Engines and schema migrations for Bretter Labs' own tables.

Each group of tables (the catalog; the authenticator's credentials in the hub database) has
its own Alembic script folder and its own version table, so they can share one PostgreSQL
database with JupyterHub, whose history stays in ``alembic_version``.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def make_engine(url: str, **kwargs) -> Engine:
    """An engine with the settings every process of ours needs.

    SQLite is shared by the hub, the service and the CLI: WAL lets readers continue while
    the service writes, and a busy timeout turns a short write lock into a wait, not an error.
    """
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(script_location: Path, url: str, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


def upgrade(engine: Engine, script_location: Path, version_table: str) -> None:
    """Bring the tables to the newest revision (creates them on an empty database)."""
    cfg = alembic_config(script_location, engine.url.render_as_string(False), version_table)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def current_revision(engine: Engine, version_table: str) -> str | None:
    with engine.connect() as connection:
        ctx = MigrationContext.configure(connection, opts={"version_table": version_table})
        return ctx.get_current_revision()


def head_revision(script_location: Path) -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(cfg).get_current_head()
