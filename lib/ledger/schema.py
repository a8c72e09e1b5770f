"""The ledger's tables, as SQLAlchemy Core metadata.

Its own module because it is the model Alembic compares with the migrations' head (lib/migrations imports
`metadata` from here through lib.ledger): a change here needs a new revision, nothing else does.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("est_cost", sa.Double, nullable=False, server_default="0"),
    sa.Column("mode", sa.String(16)),
    sa.Column("duration", sa.Integer),
    sa.Column("aspect_ratio", sa.String(16)),
    sa.Column("search_text", sa.Text, nullable=False, server_default=""),
    sa.Column("task_id", sa.String(200)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("submitted_at", sa.Double),
    sa.Column("completed_at", sa.Double),
    sa.Column("gateway_completed_at", sa.Double),
    sa.Column("video_url", sa.Text),
    sa.Column("thumbnail_url", sa.Text),
    sa.Column("expires_at", sa.Double),
    sa.Column("video_path", sa.Text),
    sa.Column("poster_path", sa.Text),
    sa.Column("archived_at", sa.Double),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("group_id", sa.String(64)),
    sa.Column("parent_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="SET NULL")),
    sa.Column("label", sa.String(200)),
    sa.Column("source", sa.String(16), nullable=False, server_default="compose"),
    sa.Column("next_poll_at", sa.Double),
    sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", sa.Double),
    sa.Column("not_found", sa.Integer, nullable=False, server_default="0"),  # 404s in a row (migration 0002)
    # who made the run when sign-in is on (lib/owners.py; migration 0003); NULL: the team (no sign-in)
    sa.Column("owner", sa.String(255)),
    sa.Column("owner_name", sa.String(200)),
)
sa.Index("ix_runs_created", runs_table.c.created_at.desc(), runs_table.c.run_id.desc())
sa.Index("ix_runs_state_due", runs_table.c.state, runs_table.c.next_poll_at)
sa.Index("ix_runs_group", runs_table.c.group_id)
sa.Index("ix_runs_parent", runs_table.c.parent_id)
sa.Index("ix_runs_updated", runs_table.c.updated_at)
sa.Index("ix_runs_owner", runs_table.c.owner, runs_table.c.created_at)
sa.Index(
    "ux_runs_task_id",
    runs_table.c.task_id,
    unique=True,
    sqlite_where=runs_table.c.task_id.isnot(None),
    postgresql_where=runs_table.c.task_id.isnot(None),
)

# One row counting committed writes to runs: the live fragment's change token. Every write transaction
# increments it as its last statement, so the row lock orders the increments like the commits; a
# max(updated_at) token can miss a write whose stamp was taken before a concurrent, earlier-committed one.
# (Called `version` until migration 0002: "version" now means the schema's, see lib/migrations.)
meta_table = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("changes", sa.BigInteger, nullable=False, server_default="0"),
)

uploads_table = sa.Table(
    "uploads",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("filename", sa.Text),
    sa.Column("local_path", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
)

# The prompt library (migration 0005): a named, tagged kling-v3 request. `name_key` (the name casefolded,
# lib.presets.name_key) is what makes names unique per ledger; `fingerprint` is name + content, so an import
# skips what the library already holds.
presets_table = sa.Table(
    "presets",
    metadata,
    sa.Column("preset_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("name_key", sa.String(200), nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)
sa.Index("ux_presets_name_key", presets_table.c.name_key, unique=True)

# Triage (migration 0006): a run's rating (1–5 stars), favourite, tags and note, one row per marked run;
# its own table so the runs table and every query on it stay as they were. `tag_keys` is "|a|b|" (tags are
# normalised and never hold "|"), what History's tag filter matches in SQL.
run_triage_table = sa.Table(
    "run_triage",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("rating", sa.Integer),
    sa.Column("favourite", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("tag_keys", sa.Text, nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("updated_by", sa.String(255)),
    sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_run_triage_rating"),
)
sa.Index("ix_run_triage_rating", run_triage_table.c.rating)

# "Which is better?" (migration 0006): one verdict per pair of runs and judge (the signed-in person's id,
# "" for the team without sign-in); a new choice replaces it. run_a < run_b, so a pair has one spelling.
run_verdicts_table = sa.Table(
    "run_verdicts",
    metadata,
    sa.Column("verdict_id", sa.String(64), primary_key=True),
    sa.Column("run_a", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("run_b", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("winner", sa.String(64), nullable=False),
    sa.Column("judge", sa.String(255), nullable=False, server_default=""),
    sa.Column("judge_name", sa.String(200)),
    sa.Column("blind", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)
sa.Index("ux_run_verdicts_pair_judge", run_verdicts_table.c.run_a, run_verdicts_table.c.run_b,
         run_verdicts_table.c.judge, unique=True)
