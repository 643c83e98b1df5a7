"""The catalog: images, templates and the live settings row, in ``BLABS_DB_URL``."""

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import dbutil
from .orm import Base, Image, Settings, Template
from .rules import SETTINGS_BOUNDS

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "blabs_alembic_version"

__all__ = ["Base", "Image", "Settings", "Template", "Catalog"]


class CatalogOutOfDate(RuntimeError):
    """The database was written by another version of Bretter Labs."""


class Catalog:
    """A handle on the catalog database: an engine and a session factory.

    The hub process calls :meth:`upgrade` once at start (it is the one process that starts
    before all others); the blabs service and the CLI open it with ``check=True`` and refuse
    to run against a schema they do not know.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine: Engine = dbutil.make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        dbutil.upgrade(self.engine, MIGRATIONS, VERSION_TABLE)

    def check(self) -> None:
        have = dbutil.current_revision(self.engine, VERSION_TABLE)
        want = dbutil.head_revision(MIGRATIONS)
        if have != want:
            raise CatalogOutOfDate(
                f"catalog schema is at {have or 'nothing'}, this code needs {want}: "
                "start the hub once to migrate it"
            )

    def session(self) -> Session:
        return self.sessions()

    def seed_settings(self, defaults) -> Settings:
        """Create the settings row from the configured defaults if it does not exist yet."""
        with self.session() as db, db.begin():
            row = db.get(Settings, 1)
            if row is None:
                row = Settings(id=1, **{key: getattr(defaults, key) for key in SETTINGS_BOUNDS})
                db.add(row)
            return row

    def settings(self) -> Settings:
        with self.session() as db:
            return db.execute(select(Settings).where(Settings.id == 1)).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()
