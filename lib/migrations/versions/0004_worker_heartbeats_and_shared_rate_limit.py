"""workers (heartbeats), rate_buckets and rate_calls (one rate limit per API key for every process).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

`workers` lets a web process with no worker of its own tell whether any worker is alive (a page says so
when none is). `rate_buckets` and `rate_calls` are the sliding-window log every process consults before
calling the gateway, keyed by a hash of the API key (never the key). New tables only: nothing existing
changes, and downgrade drops them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("threads", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("seen_at", sa.Double, nullable=False),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(32), primary_key=True),
        sa.Column("paused_until", sa.Double),
    )
    op.create_table(
        "rate_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(32), nullable=False),
        sa.Column("taken_at", sa.Double, nullable=False),
        sa.Column("done_at", sa.Double),
    )
    op.create_index("ix_rate_calls_window", "rate_calls", ["key_hash", "bucket", "done_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_calls_window", table_name="rate_calls")
    op.drop_table("rate_calls")
    op.drop_table("rate_buckets")
    op.drop_table("workers")
