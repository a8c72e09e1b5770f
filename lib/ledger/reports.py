"""Numbers over many runs: spend (total and per day), finish times, stats, and the CSV export.

Its own module because these read across history rather than one run: aggregates in SQL, and the export
streams in keyset pages with spreadsheet formulas neutralised.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import statistics
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from lib.ledger.model import COMPLETED, DRAFT, FAILED, STATES, Run, RunFilter
from lib.ledger.reads import Reads
from lib.ledger.schema import runs_table
from lib.ledger.triage import read_triage

CSV_COLUMNS = (
    "run_id", "created", "state", "mode", "duration", "aspect_ratio", "prompt", "negative_prompt",
    "image_urls", "est_cost_usd", "billed", "task_id", "progress", "seconds_to_finish", "completed",
    "archived", "expires", "error_code", "error_message", "group_id", "parent_id", "label", "source",
    "rating", "favourite", "tags", "note",  # triage (lib/ledger/triage.py)
    "owner",  # with sign-in: who made the run (their name then); empty for the team's runs
)
CSV_BATCH = 500  # runs per triage look-up while exporting


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a prompt starting with '=' must not run when the CSV is opened."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _group_key(item: tuple[tuple[str | None, int | None], list[float]]) -> tuple[str, int]:
    (mode, duration), _ = item
    return (mode or "", duration or 0)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class Reports(Reads):
    """Aggregates and the export; reads (iter_runs) because the CSV is the History filter's runs."""

    def _billed(self) -> sa.ColumnElement[bool]:
        return runs_table.c.state.notin_([DRAFT, FAILED])

    def spend(self, since: float | None = None, *, include_drafts: bool = False) -> float:
        """Estimated USD of runs the gateway may have charged (everything but failed and unsent drafts).

        include_drafts=True adds drafts about to be sent: what a budget check must count.
        """
        c = runs_table.c
        billed = c.state != FAILED if include_drafts else self._billed()
        stmt = sa.select(sa.func.coalesce(sa.func.sum(c.est_cost), 0.0)).where(billed)
        if since is not None:
            stmt = stmt.where(c.created_at >= since)
        with self._read() as conn:
            return float(conn.execute(stmt).scalar_one())

    def _day_index(self, offset: float) -> sa.ColumnElement[Any]:
        shifted = runs_table.c.created_at + offset
        if self.dialect == "sqlite":
            return sa.cast(shifted / 86400.0, sa.Integer)  # truncation == floor for positive times
        return sa.cast(sa.func.floor(shifted / 86400.0), sa.Integer)

    def spend_by_day(self, days: int = 30, *, utc_offset: float = 0.0) -> list[tuple[str, float]]:
        """[(YYYY-MM-DD, USD)] for each of the last `days` days (zeros included), oldest first."""
        today = int((self._now() + utc_offset) // 86400)
        first = today - max(1, int(days)) + 1
        day = self._day_index(utc_offset).label("day")
        stmt = (
            sa.select(day, sa.func.sum(runs_table.c.est_cost))
            .where(self._billed(), runs_table.c.created_at >= first * 86400 - utc_offset)
            .group_by(day)
        )
        with self._read() as conn:
            totals = {int(d): float(v or 0.0) for d, v in conn.execute(stmt)}
        epoch = _dt.date(1970, 1, 1)
        return [
            ((epoch + _dt.timedelta(days=d)).isoformat(), round(totals.get(d, 0.0), 6))
            for d in range(first, today + 1)
        ]

    def finish_times(self, mode: str, duration: int, *, limit: int = 50) -> list[tuple[float, float]]:
        """(seconds waiting to send, seconds from send to done) of the latest `limit` finished runs of one
        mode and duration: what a queued card's "usually ~40 s" is measured from (bounded: LIMIT)."""
        c = runs_table.c
        stmt = (
            sa.select(c.submitted_at - c.created_at, c.completed_at - c.submitted_at)
            .where(c.state == COMPLETED, c.mode == mode, c.duration == int(duration),
                   c.completed_at.isnot(None), c.submitted_at.isnot(None))
            .order_by(c.completed_at.desc())
            .limit(max(1, int(limit)))
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [(max(0.0, float(q or 0.0)), max(0.0, float(r))) for q, r in rows if r is not None]

    def stats(self) -> dict[str, Any]:
        """Success rate over finished runs and the median seconds to finish per (mode, duration)."""
        c = runs_table.c
        with self._read() as conn:
            counts: dict[str, int] = dict(
                conn.execute(sa.select(c.state, sa.func.count()).group_by(c.state)).tuples().all())
            rows = conn.execute(
                sa.select(c.mode, c.duration, c.completed_at - c.submitted_at).where(
                    c.state == COMPLETED, c.completed_at.isnot(None), c.submitted_at.isnot(None)
                )
            ).all()
        done, failed = int(counts.get(COMPLETED, 0)), int(counts.get(FAILED, 0))
        by_key: dict[tuple[str | None, int | None], list[float]] = {}
        for mode, duration, seconds in rows:
            by_key.setdefault((mode, duration), []).append(max(0.0, float(seconds)))
        finish = [
            {"mode": mode, "duration": duration, "runs": len(vals), "median_s": statistics.median(vals)}
            for (mode, duration), vals in sorted(by_key.items(), key=_group_key)
        ]
        return {
            "total": int(sum(counts.values())),
            "by_state": {state: int(counts.get(state, 0)) for state in STATES},
            "completed": done,
            "failed": failed,
            "success_rate": (done / (done + failed)) if done + failed else None,
            "median_finish": finish,
        }

    # ----------------------------------------------------------------- export
    def csv_rows(self, flt: RunFilter | None = None) -> Iterator[list[Any]]:
        """Header then one row of plain values per run (no key, no secrets: the ledger holds none)."""
        yield list(CSV_COLUMNS)
        batch: list[Run] = []
        for run in self.iter_runs(flt):
            batch.append(run)
            if len(batch) >= CSV_BATCH:
                yield from self._csv_batch(batch)
                batch = []
        yield from self._csv_batch(batch)

    def _csv_batch(self, runs: list[Run]) -> Iterator[list[Any]]:
        """Rows for some runs, with their triage read in one query (not one per run)."""
        if not runs:
            return
        with self._read() as conn:
            marks = read_triage(conn, [r.run_id for r in runs])
        for run in runs:
            p = run.params
            mark = marks.get(run.run_id)
            finish = run.seconds_to_finish
            yield [
                _csv_safe(v) for v in (
                    run.run_id, _iso(run.created_at), run.state, run.mode or "", run.duration or "",
                    run.aspect_ratio or "", p.get("prompt") or "", p.get("negative_prompt") or "",
                    " ".join(p.get("image_urls") or ()), round(run.est_cost, 4), run.billed,
                    run.task_id or "", run.progress, "" if finish is None else round(finish, 1),
                    _iso(run.completed_at), _iso(run.archived_at), _iso(run.expires_at),
                    run.error_code or "", run.error_message or "", run.group_id or "", run.parent_id or "",
                    run.label or "", run.source,
                    "" if mark is None or mark.rating is None else mark.rating,
                    bool(mark and mark.favourite), ", ".join(mark.tags) if mark else "",
                    mark.note if mark else "",
                    run.owner_name or run.owner or "",
                )
            ]

    def to_csv(self, flt: RunFilter | None = None) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in self.csv_rows(flt):
            writer.writerow(row)
        return buf.getvalue()
