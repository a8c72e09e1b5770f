"""The work queue: which runs a worker may take now, under a lease, and giving them back.

Its own module because this is what keeps a run from being worked on twice at once, across threads and
processes: SKIP LOCKED plus a lease on PostgreSQL, the write lock on SQLite, and the submit claim that
makes "send this run" happen at most once. A submit whose lease ran out is never sent again.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lib.ledger.model import (
    _WORKABLE,
    COMPLETED,
    DRAFT,
    IN_PROGRESS,
    QUEUED,
    STALE_SUBMIT_CODE,
    STALE_SUBMIT_MESSAGE,
    SUBMIT_LEASE,
    SUBMITTING,
    TIMED_OUT,
    UNKNOWN,
    Run,
)
from lib.ledger.rows import RowValues, _to_run
from lib.ledger.schema import runs_table
from lib.ledger.store import Store

log = logging.getLogger(__name__)


class Queue(Store):
    """Claims and leases; what a claimed run then becomes is lib.ledger.transitions."""

    def claim_for_submit(
        self, run_id: str, owner: str | None = None, *, now: float | None = None, lease: float = SUBMIT_LEASE
    ) -> bool:
        """draft -> submitting in one UPDATE; only the caller that gets True may call the gateway.

        The lease marks the submit as alive; if it expires with the run still "submitting", claim_due
        turns it into "unknown" instead of submitting again.
        """
        now = self._now() if now is None else now
        c = runs_table.c
        values: dict[str, Any] = {
            "state": SUBMITTING, "updated_at": self._stamp(), "lease_until": now + lease,
            "next_poll_at": None,
        }
        if owner is not None:
            values["lease_owner"] = owner
        stmt = sa.update(runs_table).where(c.run_id == run_id, c.state == DRAFT).values(**values)
        return self._execute_write(stmt)

    def unclaim_submit(self, run_id: str, retry_at: float) -> bool:
        """submitting -> draft, for a submit that certainly never reached the gateway (429, refused
        connection): it may be sent again at retry_at. False if the run was not submitting."""
        c = runs_table.c
        stmt = (
            sa.update(runs_table)
            .where(c.run_id == run_id, c.state == SUBMITTING)
            .values(state=DRAFT, next_poll_at=retry_at, updated_at=self._stamp())
        )
        return self._execute_write(stmt)

    def claim_due(self, now: float, owner: str, limit: int = 20, lease: float = 30,
                  *, archive: bool | None = None) -> list[Run]:
        """Lease the runs that need work now to `owner` until now+lease.

        Due: drafts (submit), queued/in_progress whose next look is due (poll), completed but not yet
        archived (archive). A "submitting" run whose lease ran out is never handed out again: its
        process died mid-submit, so it becomes "unknown" for the user to recover or re-submit.
        `archive`: True claims only runs to archive, False only gateway work, None both (a worker claims
        per pool, only as many as that pool has idle threads).
        """
        c = runs_table.c
        lease_free = sa.or_(c.lease_until.is_(None), c.lease_until < now)
        skip_locked = self.dialect == "postgresql"
        kind = [] if archive is None else [c.state == COMPLETED if archive else c.state != COMPLETED]
        with self._write() as conn:
            stale_q = sa.select(c.run_id).where(c.state == SUBMITTING, lease_free)
            if skip_locked:
                stale_q = stale_q.with_for_update(skip_locked=True)
            stale = list(conn.execute(stale_q).scalars())
            if stale:
                log.warning("runs %s were left mid-submit; marked unknown", stale)
                conn.execute(
                    sa.update(runs_table)
                    .where(c.run_id.in_(stale), c.state == SUBMITTING)
                    .values(state=UNKNOWN, error_code=STALE_SUBMIT_CODE, error_message=STALE_SUBMIT_MESSAGE,
                            next_poll_at=None, lease_owner=None, lease_until=None, updated_at=self._stamp())
                )
            due_q = (
                sa.select(c.run_id)
                .where(
                    c.state.in_(_WORKABLE),
                    c.next_poll_at <= now,
                    lease_free,
                    sa.or_(c.state != COMPLETED, sa.and_(c.video_path.is_(None), c.error_code.is_(None))),
                    *kind,
                )
                .order_by(c.next_poll_at, c.run_id)
                .limit(max(0, int(limit)))
            )
            if skip_locked:
                due_q = due_q.with_for_update(skip_locked=True)
            ids = list(conn.execute(due_q).scalars())
            rows: Sequence[RowValues] = []
            if ids:
                conn.execute(
                    sa.update(runs_table)
                    .where(c.run_id.in_(ids))
                    .values(lease_owner=owner, lease_until=now + lease)
                )
                rows = conn.execute(
                    sa.select(runs_table).where(c.run_id.in_(ids)).order_by(c.next_poll_at, c.run_id)
                ).mappings().all()
            if stale:
                self._bump(conn)  # the unknown runs show on pages; leases do not, so they need no bump
        runs = [_to_run(r) for r in rows]
        parked = [r["run_id"] for r, run in zip(rows, runs, strict=True) if run.unreadable]
        if parked:  # nothing the worker could do with it: take it off the schedule instead of re-claiming it
            with self._write() as conn:
                conn.execute(sa.update(runs_table).where(c.run_id.in_(parked))
                             .values(next_poll_at=None, lease_owner=None, lease_until=None))
        return [run for run in runs if not run.unreadable]

    def release(self, run_id: str, owner: str, next_poll_at: float | None) -> None:
        """Give the lease back and say when to look next (None: now if the run still needs work)."""
        c = runs_table.c
        now = self._now()
        needs_work = sa.or_(
            c.state.in_([DRAFT, QUEUED, IN_PROGRESS]),
            sa.and_(c.state == COMPLETED, c.video_path.is_(None), c.error_code.is_(None)),
            sa.and_(c.state == TIMED_OUT, c.next_poll_at.isnot(None)),  # NULL: its slow checks are over
        )
        if next_poll_at is None:
            next_value: Any = sa.case((needs_work, now), else_=sa.null())
        else:
            next_value = sa.case((needs_work, next_poll_at), else_=sa.null())
        stmt = (
            sa.update(runs_table)
            .where(c.run_id == run_id, c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_poll_at=next_value)
        )
        with self._write() as conn:
            conn.execute(stmt)
