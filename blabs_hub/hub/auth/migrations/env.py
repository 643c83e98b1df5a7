"""Alembic environment for the authenticator's table (run through blabs_hub.dbutil.upgrade)."""

from alembic import context

from blabs_hub.hub.auth.orm import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=context.config.attributes["version_table"],
    include_name=lambda name, type_, _parent: type_ != "table" or name.startswith("blabs_cred"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
