"""Extending a worker's leases on the runs it is still working on.

Why: a claim lasts one lease (60 s), which outlives any single gateway call, but not every archive
download: a large video over a slow link can take minutes. Without renewal the lease would lapse mid-
download and another worker would claim the same run and fetch the same video again. The worker renews
every third of a lease, so a live step never loses its run, and a dead worker's runs are free again one
lease after it stopped renewing. Kept out of lib/ledger.py: it is the worker's concern, one statement.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from lib import ledger as L


def renew_leases(ledger: L.Ledger, run_ids: Sequence[str], owner: str, until: float) -> int:
    """Push lease_until to at least `until` for those of `run_ids` still leased to `owner`; returns the
    count. Never shortens a lease (a submit's claim is longer than a step's) and never takes a run that
    another worker holds now."""
    if not run_ids:
        return 0
    c = L.runs_table.c
    stmt = (
        sa.update(L.runs_table)
        .where(c.run_id.in_(list(run_ids)), c.lease_owner == owner)
        .values(lease_until=sa.case((c.lease_until > until, c.lease_until), else_=until))
    )
    with ledger.engine.connect() as conn:
        conn.execution_options(ledger_write=True)  # SQLite: BEGIN IMMEDIATE, like every ledger write
        with conn.begin():
            return int(conn.execute(stmt).rowcount or 0)
