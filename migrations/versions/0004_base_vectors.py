"""base_vectors: each chunk text's base-encoder embedding (float16), so a new head never re-encodes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "base_vectors",
        sa.Column("base_key", sa.String(length=400), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("base_key", "sha256", name=op.f("pk_base_vectors")),
    )


def downgrade() -> None:
    op.drop_table("base_vectors")
