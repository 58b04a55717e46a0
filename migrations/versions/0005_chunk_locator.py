"""chunks.locator: where a chunk sits in its document (heading path, PDF pages), for payloads and citations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("locator", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("locator")
