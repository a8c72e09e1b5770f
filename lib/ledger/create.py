"""Creating runs: one draft, several drafts all or none under the budget, a run for a task made elsewhere.

Its own module because creating is where money is committed: the budget check and the inserts share one
transaction and one lock, and a repeated press (the same run id) creates nothing twice.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lib.ledger.model import FAILED, QUEUED, Creation, LedgerError, NewRun, Run
from lib.ledger.reads import Reads
from lib.ledger.rows import _to_run, run_row
from lib.ledger.schema import runs_table

if TYPE_CHECKING:
    from lib.contract import VideoRequest
    from lib.ledger import Ledger

# PostgreSQL advisory lock key every budgeted Ledger.create_runs takes (7361001 guards schema creation).
BUDGET_LOCK = 7361002


class Create(Reads):
    """Inserts of new runs; reads (get, get_by_task) because recover returns what is already there."""

    def create_run(
        self,
        run_id: str,
        request: VideoRequest | Mapping[str, Any],
        est_cost: float,
        *,
        group_id: str | None = None,
        parent_id: str | None = None,
        label: str | None = None,
        source: str = "compose",
    ) -> tuple[Run, bool]:
        """Write the draft row; the same run_id again is a no-op returning (existing run, False)."""
        values = run_row(
            run_id, request, est_cost, now=self._now(), group_id=group_id, parent_id=parent_id,
            label=label, source=source,
        )
        values["updated_at"] = self._stamp()
        with self._write() as conn:
            # RETURNING, not rowcount: SQLAlchemy on psycopg reports rowcount -1 for this INSERT.
            insert = self._insert_ignore(runs_table, values, "run_id").returning(runs_table.c.run_id)
            created = conn.execute(insert).first() is not None
            row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).mappings().one()
            if created:
                self._bump(conn)
        return _to_run(row), created

    def create_runs(self, new: Sequence[NewRun], *, budget: float | None = None) -> Creation:
        """Write several draft rows all or none, checking the budget in the same transaction.

        Why one transaction: "read spend, then insert" lets concurrent presses (two tabs, two processes)
        each see the old spend and together pass the cap. Here the check and the inserts hold one lock:
        SQLite's write lock (BEGIN IMMEDIATE) or, on PostgreSQL, a transaction-level advisory lock that
        every budgeted create takes first, so the spend each one reads includes every earlier commit.
        Spend is what ``spend(include_drafts=True)`` counts. Run ids that already exist are returned as
        they are (a repeated press) and cost nothing; a refusal writes nothing at all.
        """
        ids = [n.run_id for n in new]
        if len(set(ids)) != len(ids):
            raise LedgerError("The same run id was given twice in one press.")
        if not ids:
            return Creation(budget=budget)
        now = self._now()
        rows = []
        for i, n in enumerate(new):  # a microsecond apart: the rows keep the order they were given in
            row = run_row(n.run_id, n.request, n.est_cost, now=now + i * 1e-6, group_id=n.group_id,
                          parent_id=n.parent_id, label=n.label, source=n.source)
            row["updated_at"] = self._stamp()
            rows.append(row)
        c = runs_table.c
        with self._write() as conn:
            if budget is not None and self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUDGET_LOCK})
            existing = set(conn.execute(sa.select(c.run_id).where(c.run_id.in_(ids))).scalars())
            fresh = [r for r in rows if r["run_id"] not in existing]
            cost = round(sum(r["est_cost"] for r in fresh), 6)
            spent = 0.0
            if budget is not None:
                spent = float(conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(c.est_cost), 0.0)).where(c.state != FAILED)
                ).scalar_one())
                if fresh and spent + cost > budget + 1e-9:
                    return Creation(refused=True, spent=spent, cost=cost, budget=budget)
            made: set[str] = set()
            for row in fresh:
                insert = self._insert_ignore(runs_table, row, "run_id").returning(c.run_id)
                if conn.execute(insert).first() is not None:
                    made.add(row["run_id"])
            got = {r["run_id"]: _to_run(r)
                   for r in conn.execute(sa.select(runs_table).where(c.run_id.in_(ids))).mappings()}
            if made:
                self._bump(conn)
        return Creation(runs=tuple(got[i] for i in ids), created=tuple(i in made for i in ids),
                        spent=spent, cost=cost, budget=budget)

    def recover(self, task_id: str, request: VideoRequest | Mapping[str, Any] | None = None,
                *, est_cost: float = 0.0) -> Run:
        """A run for a task made elsewhere (curl, another app); the worker then follows it.

        Idempotent: recovering a task the ledger already has returns that run.
        """
        task_id = task_id.strip()
        if not task_id:
            raise LedgerError("Enter a task id to recover.")
        existing = self.get_by_task(task_id)
        if existing is not None:
            return existing
        now = self._now()
        values = run_row(self.new_id(), request, est_cost, now=now, state=QUEUED, source="recovered",
                         task_id=task_id)
        values["updated_at"] = self._stamp()
        try:
            with self._write() as conn:
                conn.execute(sa.insert(runs_table).values(**values))
                self._bump(conn)
        except sa.exc.IntegrityError:
            again = self.get_by_task(task_id)  # a concurrent recover of the same task won
            if again is None:
                raise
            return again
        run = self.get(values["run_id"])
        assert run is not None
        return run


def bulk_insert(ledger: Ledger, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert prepared run_row() dicts in one executemany (imports, benchmarks, scale tests)."""
    with ledger._write() as conn:
        conn.execute(sa.insert(runs_table), [dict(r) for r in rows])
        ledger._bump(conn)
