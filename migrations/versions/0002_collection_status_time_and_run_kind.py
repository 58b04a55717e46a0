"""collections.status_changed_at and ingest_runs.kind, for reindex, rollback and gc

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_changed_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="ingest", nullable=False))
    # Existing collections changed status when they were created.
    op.execute("UPDATE collections SET status_changed_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("status_changed_at")
