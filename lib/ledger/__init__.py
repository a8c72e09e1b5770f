"""The durable run ledger: every run, its request, its gateway task and its archive, in one table.

The ledger, not the browser session, is the source of truth. A row is written (state "draft") before the
gateway is called, so a reload, a closed tab or a killed server loses nothing, and the atomic
draft -> submitting transition makes "submit this run" happen at most once however many times it is asked.

SQLAlchemy Core over a SQLite file (WAL) by default; the same code runs on PostgreSQL
(``postgresql+psycopg://…``), where several app processes share one ledger and their workers claim due
runs with ``SELECT … FOR UPDATE SKIP LOCKED`` plus a lease, so no run is worked on twice at once.

Scheduling invariant: ``next_poll_at`` is when a worker should next look at a run; NULL means "nothing to
do" (failed, archived, unknown). That keeps ``claim_due`` an index range scan however large history grows.

One concept per module (docs/internals.md has the map): model (states, Run, filters), schema (tables),
store (engine, upgrade on open, transactions), rows (row <-> Run), reads, create, queue (claims, leases),
transitions (what answers do to a run), reports (spend, stats, CSV), uploads, presets (the prompt
library), triage (ratings, favourites, tags, notes, verdicts). Import from here:
``from lib.ledger import Ledger, Run, …``; the modules are an implementation detail.
"""
from __future__ import annotations

from lib.ledger.chains import ChainLink, Chains, SequenceRow
from lib.ledger.create import BUDGET_LOCK, Create, bulk_insert
from lib.ledger.model import (
    ACTIVE,
    COMPLETED,
    DRAFT,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    SOURCES,
    STALE_SUBMIT_CODE,
    STALE_SUBMIT_MESSAGE,
    STATES,
    SUBMIT_LEASE,
    SUBMITTING,
    TASK_GONE_CODE,
    TERMINAL,
    TIMED_OUT,
    TIMED_OUT_CODE,
    UNKNOWN,
    UNREADABLE,
    UNREADABLE_LABEL,
    Creation,
    LedgerError,
    LedgerTooNew,
    NewRun,
    Run,
    RunFilter,
)
from lib.ledger.presets import ImportResult, Presets
from lib.ledger.queue import Queue
from lib.ledger.reports import CSV_COLUMNS, Reports
from lib.ledger.rows import _to_run as _to_run  # tests build Runs from hand-made rows through it
from lib.ledger.rows import run_row
from lib.ledger.schema import (
    meta_table,
    metadata,
    presets_table,
    run_triage_table,
    run_verdicts_table,
    runs_table,
    uploads_table,
)
from lib.ledger.transitions import Transitions
from lib.ledger.triage import Triage
from lib.ledger.uploads import Uploads


class Ledger(Create, Queue, Transitions, Reports, Uploads, Presets, Triage, Chains):
    """Every read and write of runs, uploads, presets, marks and shot chains; one Engine, short
    transactions."""


__all__ = [
    "ACTIVE",
    "BUDGET_LOCK",
    "COMPLETED",
    "CSV_COLUMNS",
    "DRAFT",
    "FAILED",
    "IN_PROGRESS",
    "QUEUED",
    "SOURCES",
    "STALE_SUBMIT_CODE",
    "STALE_SUBMIT_MESSAGE",
    "STATES",
    "SUBMITTING",
    "SUBMIT_LEASE",
    "TASK_GONE_CODE",
    "TERMINAL",
    "TIMED_OUT",
    "TIMED_OUT_CODE",
    "UNKNOWN",
    "UNREADABLE",
    "UNREADABLE_LABEL",
    "ChainLink",
    "Chains",
    "Creation",
    "ImportResult",
    "Ledger",
    "LedgerError",
    "LedgerTooNew",
    "NewRun",
    "Run",
    "RunFilter",
    "SequenceRow",
    "bulk_insert",
    "meta_table",
    "metadata",
    "presets_table",
    "run_row",
    "run_triage_table",
    "run_verdicts_table",
    "runs_table",
    "uploads_table",
]

# The tables the processes on one ledger share besides runs (worker heartbeats, the shared rate limit),
# registered on `metadata` here so the migrations and their model check see one schema.
from lib import fleet_tables as _fleet_tables  # noqa: E402,F401
