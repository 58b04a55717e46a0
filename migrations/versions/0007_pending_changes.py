"""pending_changes: the journal of store writes a command has begun and not yet finished

Each row is one intended change of one physical collection (a document replaced, documents
deleted, points written by a batch, a collection dropped): the point ids it adds and the ones it
removes, recorded before the store is touched and deleted once the store and the catalog agree
again. The next command that opens the store finishes or undoes every row it finds
(``ragcun.collections.journal``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("physical_name", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=True),
        sa.Column("new_chunk_ids", sa.JSON(), nullable=False),
        sa.Column("stale_chunk_ids", sa.JSON(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_changes")),
    )


def downgrade() -> None:
    op.drop_table("pending_changes")
