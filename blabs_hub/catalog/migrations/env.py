"""Alembic environment for the catalog tables (run through blabs_hub.dbutil.upgrade)."""

from alembic import context

from blabs_hub.catalog.orm import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=context.config.attributes["version_table"],
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
