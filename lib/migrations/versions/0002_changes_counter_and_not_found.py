"""ledger_meta.version -> ledger_meta.changes; runs.not_found (consecutive 404s on status checks).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

"version" now means the schema's (this folder); the one-row counter the pages poll for changes is
`changes`, its value kept. `not_found` counts the gateway's 404 answers to a run's status checks since its
last readable answer: three in a row end the run ("the gateway no longer knows this task"). It lives in
the ledger, not in a worker's memory, so a restart or another process on the same ledger keeps counting.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("ledger_meta", "version", new_column_name="changes")  # RENAME COLUMN on both backends
    op.add_column("runs", sa.Column("not_found", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("runs", "not_found")
    op.alter_column("ledger_meta", "changes", new_column_name="version")
