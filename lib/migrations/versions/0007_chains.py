"""chains: which run continues which (chain_links) and each sequence's share id and export (sequences).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

New tables only: no run, upload or counter is touched, so every run is kept as it was.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_links",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("parent_run_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("frame_time", sa.Double(), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_chain_links_parent", "chain_links", ["parent_run_id"])
    op.create_table(
        "sequences",
        sa.Column("sequence_id", sa.String(64), primary_key=True),
        sa.Column("last_run_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("export_signature", sa.String(64)),
        sa.Column("video_path", sa.Text()),
        sa.Column("poster_path", sa.Text()),
        sa.Column("duration", sa.Double()),
        sa.Column("export_mode", sa.String(8)),
        sa.Column("exported_at", sa.Double()),
    )
    op.create_index("ux_sequences_last_run", "sequences", ["last_run_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_sequences_last_run", table_name="sequences")
    op.drop_table("sequences")
    op.drop_index("ix_chain_links_parent", table_name="chain_links")
    op.drop_table("chain_links")
