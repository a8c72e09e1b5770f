"""Triage in the ledger: each run's rating, favourite, tags and note, and "Which is better?" verdicts.

Its own module (and its own two tables, migration 0006) because marks are about runs but never change
them: the runs table, the worker's queries and the change signatures pages follow stay as they were.
What a valid mark is lives in lib/triage.py; every write here checks the values again, so a direct call
with a rating of 7 is refused in words like a widget would be. Each write bumps the change token, so
History's cached counts and stats see it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from lib import triage as rules
from lib.ledger.model import LedgerError, RunFilter
from lib.ledger.schema import run_triage_table, run_verdicts_table, runs_table
from lib.ledger.store import Store

T = run_triage_table.c
V = run_verdicts_table.c
_UNSET: Any = object()
VERDICT_SCAN = 100_000  # verdicts are made by hand: far more than any team makes, still a bounded read


def _tags(raw: Any) -> tuple[str, ...]:
    try:
        value = json.loads(raw or "[]")
    except (TypeError, ValueError):
        return ()
    return tuple(str(t) for t in value) if isinstance(value, list) else ()


def _to_triage(row: Any) -> rules.Triage:
    rating = row.rating if isinstance(row.rating, int) else None
    if rating is not None and not rules.RATING_MIN <= rating <= rules.RATING_MAX:
        rating = None
    return rules.Triage(run_id=row.run_id, rating=rating, favourite=bool(row.favourite), tags=_tags(row.tags),
                        note=str(row.note or ""), updated_at=row.updated_at, updated_by=row.updated_by)


def read_triage(conn: Connection, run_ids: Sequence[str]) -> dict[str, rules.Triage]:
    """The marks of these runs (those never marked are absent): one query, for a page or a CSV batch."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    rows = conn.execute(sa.select(run_triage_table).where(T.run_id.in_(ids))).all()
    return {r.run_id: _to_triage(r) for r in rows}


def triage_where(flt: RunFilter) -> list[sa.ColumnElement[bool]]:
    """History's triage filters as conditions on runs (a subquery each: list and count stay one query)."""
    conds: list[sa.ColumnElement[bool]] = []
    run_id = runs_table.c.run_id
    if flt.min_rating is not None:
        conds.append(run_id.in_(sa.select(T.run_id).where(T.rating >= int(flt.min_rating))))
    if flt.favourite:
        conds.append(run_id.in_(sa.select(T.run_id).where(T.favourite.is_(True))))
    if flt.tag:
        needle = f"|{flt.tag}|"
        conds.append(run_id.in_(sa.select(T.run_id).where(T.tag_keys.contains(needle, autoescape=True))))
    return conds


def triage_order(flt: RunFilter) -> list[sa.ColumnElement[Any]]:
    """The leading sort keys of History's "Best rated first" (unrated runs last), or none."""
    if flt.sort != "rating":
        return []
    rating = sa.select(T.rating).where(T.run_id == runs_table.c.run_id).scalar_subquery()
    return [sa.func.coalesce(rating, 0).desc()]


class Triage(Store):
    """Marks and verdicts: read in batches, written one run (or pair) per transaction."""

    def get_triage(self, run_id: str) -> rules.Triage:
        with self._read() as conn:
            return read_triage(conn, [run_id]).get(run_id) or rules.Triage(run_id)

    def triage_many(self, run_ids: Iterable[str]) -> dict[str, rules.Triage]:
        with self._read() as conn:
            return read_triage(conn, list(run_ids))

    def triage_tags(self, limit: int = 200) -> list[str]:
        """Tags in use, most used first then alphabetical (History's tag filter offers these)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(T.tags).where(T.tag_keys != "").limit(20_000)).all()
        counts: dict[str, int] = {}
        for row in rows:
            for tag in _tags(row.tags):
                counts[tag] = counts.get(tag, 0) + 1
        return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]

    def set_triage(self, run_id: str, *, rating: Any = _UNSET, favourite: Any = _UNSET, tags: Any = _UNSET,
                   note: Any = _UNSET, by: str | None = None) -> rules.Triage:
        """Change some of a run's marks (the others stay); every value is checked first (TriageError in
        words, nothing written). A run that does not exist is a LedgerError."""
        values: dict[str, Any] = {}
        if rating is not _UNSET:
            values["rating"] = rules.check_rating(rating)
        if favourite is not _UNSET:
            values["favourite"] = rules.check_favourite(favourite)
        if tags is not _UNSET:
            clean = rules.parse_tags(tags)
            values["tags"] = json.dumps(list(clean), ensure_ascii=False)
            values["tag_keys"] = rules.tag_keys_column(clean)
        if note is not _UNSET:
            values["note"] = rules.check_note(note)
        values["updated_at"] = self._now()
        values["updated_by"] = (by or None) and by[:255]
        insert = (sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert)(run_triage_table)
        stmt = insert.values(run_id=run_id, **values).on_conflict_do_update(
            index_elements=["run_id"], set_=values)
        with self._write() as conn:
            exists = sa.select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)
            if conn.execute(exists).first() is None:
                raise LedgerError("That run is not in the ledger, so it cannot be marked.")
            conn.execute(stmt)
            self._bump(conn)
            return read_triage(conn, [run_id])[run_id]

    # ------------------------------------------------------------- verdicts
    def record_verdict(self, run_a: str, run_b: str, winner: str, *, judge: str = rules.TEAM_JUDGE,
                       judge_name: str | None = None, blind: bool = False) -> tuple[rules.Verdict, bool]:
        """One judge's verdict on a pair: a new one, or a change of mind replacing theirs (one row per
        pair and judge, whatever the order the pair is given in). (verdict, changed): the same choice
        again writes nothing."""
        first, second = rules.pair_ids(run_a, run_b)
        if winner not in (first, second):
            raise rules.TriageError("The winner must be one of the two runs being compared.")
        if not isinstance(blind, bool):
            raise rules.TriageError("Blind is on or off.")
        judge = (judge or rules.TEAM_JUDGE)[:255]
        now = self._now()
        with self._write() as conn:
            found = conn.execute(sa.select(runs_table.c.run_id)
                                 .where(runs_table.c.run_id.in_([first, second]))).all()
            if len(found) != 2:
                raise LedgerError("One of these runs is not in the ledger, so there is nothing to compare.")
            old = conn.execute(sa.select(run_verdicts_table).where(
                V.run_a == first, V.run_b == second, V.judge == judge)).first()
            if old is not None and old.winner == winner and bool(old.blind) == blind:
                return _to_verdict(old), False
            name = (judge_name or None) and judge_name[:200]
            values = {"winner": winner, "blind": blind, "judge_name": name, "updated_at": now}
            insert = (sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert)(
                run_verdicts_table)
            conn.execute(insert.values(verdict_id=self.new_id(), run_a=first, run_b=second, judge=judge,
                                       created_at=now, **values)
                         .on_conflict_do_update(index_elements=["run_a", "run_b", "judge"], set_=values))
            self._bump(conn)
            row = conn.execute(sa.select(run_verdicts_table).where(
                V.run_a == first, V.run_b == second, V.judge == judge)).one()
        return _to_verdict(row), True

    def verdict_for(self, run_a: str, run_b: str, judge: str = rules.TEAM_JUDGE) -> rules.Verdict | None:
        first, second = rules.pair_ids(run_a, run_b)
        with self._read() as conn:
            row = conn.execute(sa.select(run_verdicts_table).where(
                V.run_a == first, V.run_b == second, V.judge == (judge or rules.TEAM_JUDGE))).first()
        return _to_verdict(row) if row else None

    def count_verdicts(self) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(run_verdicts_table)).scalar_one())

    def verdict_stats(self) -> rules.VerdictStats:
        """How often pro beat std (per prompt and overall) and what the pro takes cost over their pairs."""
        a, b = runs_table.alias("a"), runs_table.alias("b")
        stmt = (sa.select(V.winner, V.blind, a.c.run_id.label("a_id"), a.c.mode.label("a_mode"),
                          a.c.est_cost.label("a_cost"), a.c.params.label("a_params"),
                          b.c.run_id.label("b_id"), b.c.mode.label("b_mode"), b.c.est_cost.label("b_cost"),
                          b.c.params.label("b_params"))
                .join(a, a.c.run_id == V.run_a).join(b, b.c.run_id == V.run_b)
                .where(a.c.mode != b.c.mode)
                .order_by(V.updated_at).limit(VERDICT_SCAN))
        with self._read() as conn:
            rows = conn.execute(stmt).all()

        def side(run_id: str, mode: str | None, cost: float | None, params: str | None) -> dict[str, Any]:
            try:
                prompt = json.loads(params or "{}").get("prompt") or ""
            except (TypeError, ValueError, AttributeError):
                prompt = ""
            return {"run_id": run_id, "mode": mode, "est_cost": cost, "prompt": str(prompt)}

        pairs = [(side(r.a_id, r.a_mode, r.a_cost, r.a_params), side(r.b_id, r.b_mode, r.b_cost, r.b_params),
                  r.winner, bool(r.blind)) for r in rows]
        return rules.verdict_stats(rules.verdict_rows(pairs))


def _to_verdict(row: Any) -> rules.Verdict:
    return rules.Verdict(run_a=row.run_a, run_b=row.run_b, winner=row.winner, judge=row.judge,
                         judge_name=row.judge_name, blind=bool(row.blind), created_at=row.created_at,
                         updated_at=row.updated_at)
