"""The tables processes on one ledger use to work together: worker heartbeats and the shared rate limit.

Why in the ledger's database: it is the one thing every web process and worker already shares (one
PostgreSQL for a team; one SQLite file for processes on one machine), so "is any worker alive?" and "how
many calls did this API key make in the last second, across all processes?" need no new service. The
tables sit on lib.ledger's metadata so migrations (revision 0004) and their model check see one schema.
The API key itself is never stored: buckets are keyed by a hash prefix (lib/shared_limit.py).
"""
from __future__ import annotations

import sqlalchemy as sa

from lib.ledger.schema import metadata

# One row per (key hash, bucket): the row every acquisition locks, and the pause a 429's Retry-After set.
# Bucket "*" holds a pause for all buckets.
rate_buckets_table = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(32), primary_key=True),
    sa.Column("paused_until", sa.Double),
)

# The sliding-window log: one row per call; done_at NULL while the call is on the wire.
rate_calls_table = sa.Table(
    "rate_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(32), nullable=False),
    sa.Column("taken_at", sa.Double, nullable=False),
    sa.Column("done_at", sa.Double),
)
sa.Index("ix_rate_calls_window", rate_calls_table.c.key_hash, rate_calls_table.c.bucket,
         rate_calls_table.c.done_at)

# One row per running worker, refreshed every few seconds (lib/heartbeat.py).
workers_table = sa.Table(
    "workers",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("threads", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("seen_at", sa.Double, nullable=False),
)
