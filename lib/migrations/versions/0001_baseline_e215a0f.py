"""Baseline: the ledger exactly as commit e215a0f's create_all made it.

Revision ID: 0001
Revises:
Create Date: 2026-12-06

Ledgers written before migrations existed have these tables but no alembic_version; lib.migrations
stamps them with this revision instead of running it. Like every revision, this file describes the schema
of its time and must not import lib.ledger (whose models move on).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("est_cost", sa.Double(), server_default="0", nullable=False),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("aspect_ratio", sa.String(16), nullable=True),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column("task_id", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer(), server_default="0", nullable=False),
        sa.Column("submitted_at", sa.Double(), nullable=True),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.Column("gateway_completed_at", sa.Double(), nullable=True),
        sa.Column("video_url", sa.Text(), nullable=True),
        sa.Column("thumbnail_url", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("video_path", sa.Text(), nullable=True),
        sa.Column("poster_path", sa.Text(), nullable=True),
        sa.Column("archived_at", sa.Double(), nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("source", sa.String(16), server_default="compose", nullable=False),
        sa.Column("next_poll_at", sa.Double(), nullable=True),
        sa.Column("polls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["runs.run_id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_runs_created", "runs",
                    [sa.literal_column("created_at DESC"), sa.literal_column("run_id DESC")])
    op.create_index("ix_runs_state_due", "runs", ["state", "next_poll_at"])
    op.create_index("ix_runs_group", "runs", ["group_id"])
    op.create_index("ix_runs_parent", "runs", ["parent_id"])
    op.create_index("ix_runs_updated", "runs", ["updated_at"])
    has_task = sa.text("task_id IS NOT NULL")
    op.create_index("ux_runs_task_id", "runs", ["task_id"], unique=True,
                    sqlite_where=has_task, postgresql_where=has_task)
    meta = op.create_table(
        "ledger_meta",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(meta, [{"id": 1, "version": 0}])  # e215a0f inserted its one row at start
    op.create_table(
        "uploads",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("local_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_table("ledger_meta")
    for name in ("ux_runs_task_id", "ix_runs_updated", "ix_runs_parent", "ix_runs_group", "ix_runs_state_due",
                 "ix_runs_created"):
        op.drop_index(name, table_name="runs")
    op.drop_table("runs")
