"""presets: the prompt library (a named, tagged kling-v3 request), unique by name per ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A new table only: no run, upload or counter is touched, so a ledger upgraded from 0002 keeps every row
as it was. `name_key` is the name casefolded (lib.presets.name_key): "Fox" and "fox" are one preset.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "presets",
        sa.Column("preset_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("tags", sa.Text(), server_default="[]", nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ux_presets_name_key", "presets", ["name_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_presets_name_key", table_name="presets")
    op.drop_table("presets")
