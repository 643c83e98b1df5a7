"""the start gate's size becomes a live setting

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # An existing settings row gets the documented default; admins change it live after.
    with op.batch_alter_table("blabs_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_concurrent_starts", sa.Integer(), server_default="20", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("blabs_settings", schema=None) as batch_op:
        batch_op.drop_column("max_concurrent_starts")
