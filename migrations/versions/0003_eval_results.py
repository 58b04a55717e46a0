"""eval_results: scores of `ragcun eval`, tied to collection and model version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=36), nullable=False),
        sa.Column("collection_name", sa.String(length=200), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("queries", sa.Text(), nullable=False),
        sa.Column("qrels", sa.Text(), nullable=False),
        sa.Column("num_queries", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_eval_results_collection_id_collections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name=op.f("fk_eval_results_model_version_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
    )
    with op.batch_alter_table("eval_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_results_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_results_collection_name"), ["collection_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eval_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_results_collection_name"))
        batch_op.drop_index(batch_op.f("ix_eval_results_batch"))
    op.drop_table("eval_results")
