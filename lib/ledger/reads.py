"""Reading runs: one run, lists and counts under a RunFilter, groups and their trees, the change token.

Its own module because these are what every page asks on each rerun and tick: each is one short read
transaction, filtered and paged in SQL, and never changes a row.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import sqlalchemy as sa

from lib.ledger.model import ACTIVE, Run, RunFilter
from lib.ledger.rows import _to_run
from lib.ledger.schema import meta_table, runs_table
from lib.ledger.store import Store
from lib.ledger.triage import triage_order, triage_where


class Reads(Store):
    """Queries that build Runs (through _to_run) or small answers (counts, states, the change token)."""

    def get(self, run_id: str) -> Run | None:
        with self._read() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).mappings().first()
        return _to_run(row) if row else None

    def get_many(self, run_ids: Iterable[str]) -> list[Run]:
        """The runs with these ids that exist, in no particular order (one query: the live fragment
        checks the runs a page follows on every ledger change)."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        with self._read() as conn:
            rows = conn.execute(sa.select(runs_table).where(runs_table.c.run_id.in_(ids))).mappings().all()
        return [_to_run(row) for row in rows]

    def get_by_task(self, task_id: str) -> Run | None:
        with self._read() as conn:
            stmt = sa.select(runs_table).where(runs_table.c.task_id == task_id)
            row = conn.execute(stmt).mappings().first()
        return _to_run(row) if row else None

    def _where(self, flt: RunFilter) -> list[sa.ColumnElement[bool]]:
        c = runs_table.c
        conds: list[sa.ColumnElement[bool]] = []
        text = (flt.text or "").strip()
        if text:
            conds.append(
                sa.or_(
                    c.search_text.contains(text.lower(), autoescape=True), c.task_id == text, c.run_id == text
                )
            )
        if flt.states:
            conds.append(c.state.in_(list(flt.states)))
        if flt.modes:
            conds.append(c.mode.in_(list(flt.modes)))
        if flt.durations:
            conds.append(c.duration.in_([int(d) for d in flt.durations]))
        if flt.since is not None:
            conds.append(c.created_at >= flt.since)
        if flt.until is not None:
            conds.append(c.created_at < flt.until)
        if flt.group_id:
            conds.append(c.group_id == flt.group_id)
        if flt.owner:
            conds.append(c.owner == flt.owner)
        conds.extend(triage_where(flt))  # rating, favourites, tag (lib/ledger/triage.py)
        return conds

    def list_runs(self, flt: RunFilter | None = None, limit: int = 50, offset: int = 0) -> list[Run]:
        """Newest first, filtered and paged in the database (index on created_at desc)."""
        flt = flt or RunFilter()
        c = runs_table.c
        stmt = (
            sa.select(runs_table)
            .where(*self._where(flt))
            .order_by(*triage_order(flt), c.created_at.desc(), c.run_id.desc())
            .limit(max(0, int(limit)))
            .offset(max(0, int(offset)))
        )
        with self._read() as conn:
            return [_to_run(r) for r in conn.execute(stmt).mappings()]

    def states(self, run_ids: Iterable[str] = (), *, active_limit: int = 100) -> dict[str, str]:
        """{run_id: state} of the newest `active_limit` runs in flight plus the runs named in `run_ids`:
        two columns, no request decoding, because every open page asks on each ledger change."""
        c = runs_table.c
        active = (sa.select(c.run_id, c.state).where(c.state.in_(sorted(ACTIVE)))
                  .order_by(c.created_at.desc(), c.run_id.desc()).limit(max(0, int(active_limit))))
        ids = sorted(set(run_ids))
        with self._read() as conn:
            out = {r.run_id: r.state for r in conn.execute(active)}
            if ids:
                out.update({r.run_id: r.state
                            for r in conn.execute(sa.select(c.run_id, c.state).where(c.run_id.in_(ids)))})
        return out

    def count_runs(self, flt: RunFilter | None = None) -> int:
        flt = flt or RunFilter()
        stmt = sa.select(sa.func.count()).select_from(runs_table).where(*self._where(flt))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def iter_runs(self, flt: RunFilter | None = None, batch: int = 1000) -> Iterator[Run]:
        """Every matching run, newest first, fetched in keyset pages (no long-held read, no deep OFFSET)."""
        flt = flt or RunFilter()
        c = runs_table.c
        last: tuple[float, str] | None = None
        while True:
            conds = self._where(flt)
            if last is not None:
                conds.append(sa.tuple_(c.created_at, c.run_id) < sa.tuple_(
                    sa.literal(last[0], c.created_at.type), sa.literal(last[1], c.run_id.type)))
            stmt = (
                sa.select(runs_table).where(*conds)
                .order_by(c.created_at.desc(), c.run_id.desc()).limit(batch)
            )
            with self._read() as conn:
                page = [_to_run(r) for r in conn.execute(stmt).mappings()]
            yield from page
            if len(page) < batch:
                return
            last = (page[-1].created_at, page[-1].run_id)

    def group(self, group_id: str) -> list[Run]:
        c = runs_table.c
        stmt = sa.select(runs_table).where(c.group_id == group_id).order_by(c.created_at, c.run_id)
        with self._read() as conn:
            runs = [_to_run(r) for r in conn.execute(stmt).mappings()]
        return [r for r in runs if not r.unreadable]  # no settings, so no cell: the lists show them

    def group_tree(self, group_id: str) -> list[Run]:
        """A group's runs and every child of them (promotions live outside the group) in one query: what
        Compare's live tick needs, so a tick costs one read whatever the size of the grid."""
        c = runs_table.c
        members = sa.select(c.run_id).where(c.group_id == group_id).scalar_subquery()
        stmt = (sa.select(runs_table).where(sa.or_(c.group_id == group_id, c.parent_id.in_(members)))
                .order_by(c.created_at, c.run_id))
        with self._read() as conn:
            runs = [_to_run(r) for r in conn.execute(stmt).mappings()]
        return [r for r in runs if not r.unreadable]

    def children(self, run_id: str) -> list[Run]:
        c = runs_table.c
        stmt = sa.select(runs_table).where(c.parent_id == run_id).order_by(c.created_at, c.run_id)
        with self._read() as conn:
            runs = [_to_run(r) for r in conn.execute(stmt).mappings()]
        return [r for r in runs if not r.unreadable]

    def in_flight(self) -> int:
        c = runs_table.c
        stmt = sa.select(sa.func.count()).select_from(runs_table).where(c.state.in_(sorted(ACTIVE)))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def changes(self) -> tuple[int]:
        """Cheap change token for the live fragment: the count of committed writes (one-row read)."""
        with self._read() as conn:
            value = conn.execute(sa.select(meta_table.c.changes).where(meta_table.c.id == 1)).scalar_one()
        return (int(value),)
