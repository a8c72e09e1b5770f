"""runs.owner and runs.owner_name: who made a run when sign-in (OIDC) is on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

`owner` is the signed-in user's stable id (the provider's `sub`), `owner_name` their display name when
the run was made (what a shared view shows). Both are NULL for every run made without sign-in, so a
ledger that existed before this revision keeps all its runs as the team's (shown as "Team"); nothing is
rewritten. The index serves History's and Compose's default "my runs" view (newest first per owner).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("owner", sa.String(length=255), nullable=True))
    op.add_column("runs", sa.Column("owner_name", sa.String(length=200), nullable=True))
    op.create_index("ix_runs_owner", "runs", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_owner", table_name="runs")
    op.drop_column("runs", "owner_name")
    op.drop_column("runs", "owner")
