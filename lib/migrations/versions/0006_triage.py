"""triage: a run's rating, favourite, tags and note, and "Which is better?" verdicts between two runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

New tables only, keyed by run id: no run, upload, preset or counter is touched, so a ledger upgraded from
0005 keeps every row as it was, and a downgrade drops only the marks and verdicts.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_triage",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("rating", sa.Integer()),
        sa.Column("favourite", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("tags", sa.Text(), server_default="[]", nullable=False),
        sa.Column("tag_keys", sa.Text(), server_default="", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.String(255)),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_run_triage_rating"),
    )
    op.create_index("ix_run_triage_rating", "run_triage", ["rating"])
    op.create_table(
        "run_verdicts",
        sa.Column("verdict_id", sa.String(64), primary_key=True),
        sa.Column("run_a", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_b", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("winner", sa.String(64), nullable=False),
        sa.Column("judge", sa.String(255), server_default="", nullable=False),
        sa.Column("judge_name", sa.String(200)),
        sa.Column("blind", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ux_run_verdicts_pair_judge", "run_verdicts", ["run_a", "run_b", "judge"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_run_verdicts_pair_judge", table_name="run_verdicts")
    op.drop_table("run_verdicts")
    op.drop_index("ix_run_triage_rating", table_name="run_triage")
    op.drop_table("run_triage")
