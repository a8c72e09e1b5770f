"""What the gateway's answers and the archive's outcomes do to a run: the state changes after a claim.

Its own module because these are the only writes that move a run between states, each one guarded in SQL
(never a finished run back, never a lost URL, progress never down), whoever calls it and however often.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lib.ledger.model import (
    _STATUS_TO_STATE,
    ACTIVE,
    COMPLETED,
    DRAFT,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    SUBMITTING,
    TERMINAL,
    TIMED_OUT,
    TIMED_OUT_CODE,
    UNKNOWN,
    LedgerError,
)
from lib.ledger.reads import Reads
from lib.ledger.rows import RowValues
from lib.ledger.schema import runs_table

if TYPE_CHECKING:
    from lib.gateway import Task

log = logging.getLogger(__name__)


def _task_value(task: Any, name: str) -> Any:
    return getattr(task, name, None)


class Transitions(Reads):
    """State changes of one run; reads (get_by_task) because a task id may belong to one run only."""

    def set_note(self, run_id: str, text: str | None) -> None:
        """A transient sentence on a run's card while the worker waits ("rate limited, retrying in 4 s";
        "could not save the video, next try in 30 s"), kept in error_message with error_code empty; None
        clears it. Only runs still in the worker's hands (active, or completed and not yet archived) take
        a note; a run with an error_code keeps its reason untouched."""
        c = runs_table.c
        in_hand = sa.or_(
            c.state.in_(sorted(ACTIVE)), sa.and_(c.state == COMPLETED, c.video_path.is_(None))
        )
        stmt = (
            sa.update(runs_table)
            .where(c.run_id == run_id, c.error_code.is_(None), in_hand)
            .values(error_message=text, updated_at=self._stamp())
        )
        if text is None:
            stmt = stmt.where(c.error_message.isnot(None))  # clearing nothing must not bump changes()
        self._execute_write(stmt)

    def mark_submitted(self, run_id: str, task: Task, next_poll_at: float) -> None:
        """The gateway accepted the run: keep its task id and first status.

        Also accepted from "unknown" (a slow submit that was declared lost, then came back).
        """
        now = self._now()
        c = runs_table.c
        with self._write() as conn:
            row = conn.execute(sa.select(runs_table).where(c.run_id == run_id)).mappings().first()
            if row is None:
                raise LedgerError(f"No run {run_id!r} in the ledger.")
            if row["state"] not in (DRAFT, SUBMITTING, UNKNOWN):
                log.warning("mark_submitted on run %s in state %s ignored", run_id, row["state"])
                return
            values = self._task_values(row, task, next_poll_at, now)
            values.update(task_id=task.id, submitted_at=now, polls=row["polls"])
            if values["state"] == row["state"]:  # _task_values kept the old state: at least queued
                values["state"] = QUEUED
            if values["state"] not in TERMINAL:
                values.setdefault("error_code", None)
                values.setdefault("error_message", None)
            conn.execute(sa.update(runs_table).where(c.run_id == run_id).values(**values))
            self._bump(conn)

    def mark_submit_failed(self, run_id: str, code: str | None, message: str) -> None:
        """The gateway refused the submit (4xx before any task existed): failed and not billed."""
        now = self._now()
        self._update(
            run_id,
            state=FAILED, error_code=code, error_message=message, completed_at=now,
            next_poll_at=None, lease_owner=None, lease_until=None,
        )

    def mark_timed_out(self, run_id: str, message: str, next_poll_at: float | None) -> bool:
        """Stop waiting for a sent run past its deadline: state timed_out with `message` (words for the
        card), no longer in flight, never re-sent; `next_poll_at` is its next slow check, None when they
        are over. Only from queued/in_progress/timed_out; False when the run was elsewhere (finished)."""
        c = runs_table.c
        stmt = (
            sa.update(runs_table)
            .where(c.run_id == run_id, c.state.in_([QUEUED, IN_PROGRESS, TIMED_OUT]))
            .values(state=TIMED_OUT, error_code=TIMED_OUT_CODE, error_message=message,
                    next_poll_at=next_poll_at, updated_at=self._stamp())
        )
        return self._execute_write(stmt)

    def note_not_found(self, run_id: str) -> int:
        """Count one 404 answer to this run's status check; returns the 404s since its last readable
        answer (apply_task resets it), kept in the ledger so a restart or another process counts on."""
        c = runs_table.c
        stmt = (sa.update(runs_table).where(c.run_id == run_id)
                .values(not_found=c.not_found + 1).returning(c.not_found))
        with self._write() as conn:
            count = conn.execute(stmt).scalar_one_or_none()
        if count is None:
            raise LedgerError(f"No run {run_id!r} in the ledger.")
        return int(count)

    def mark_unknown(self, run_id: str, message: str, code: str = "submit_unknown") -> None:
        """The submit may or may not have reached the gateway (timeout): never re-submitted by itself."""
        self._update(
            run_id,
            state=UNKNOWN, error_code=code, error_message=message,
            next_poll_at=None, lease_owner=None, lease_until=None,
        )

    def attach_task(self, run_id: str, task_id: str, next_poll_at: float | None = None) -> None:
        """Tie a run that has no task (unknown / failed-to-submit) to a task id found elsewhere."""
        other = self.get_by_task(task_id)
        if other is not None and other.run_id != run_id:
            raise LedgerError(f"Task {task_id} already belongs to run {other.run_id}.")
        now = self._now()
        c = runs_table.c
        stmt = (
            sa.update(runs_table)
            .where(c.run_id == run_id, sa.or_(c.task_id.is_(None), c.task_id == task_id))
            .values(
                task_id=task_id, state=QUEUED, error_code=None, error_message=None, completed_at=None,
                next_poll_at=now if next_poll_at is None else next_poll_at,
                lease_owner=None, lease_until=None, updated_at=self._stamp(),
            )
        )
        try:
            with self._write() as conn:
                if conn.execute(stmt).rowcount != 1:
                    raise LedgerError(f"Run {run_id} does not exist or already has another task id.")
                self._bump(conn)
        except sa.exc.IntegrityError as exc:
            raise LedgerError(f"Task {task_id} already belongs to another run.") from exc

    # ----------------------------------------------------------------- polling path
    def _task_values(self, row: RowValues, task: Task, next_poll_at: float | None,
                     now: float) -> dict[str, Any]:
        """Column updates for one gateway Task; never moves a finished run back, never loses a URL."""
        old = row["state"]
        new = _STATUS_TO_STATE.get(str(_task_value(task, "status") or ""), old)
        if old in TERMINAL or (old == TIMED_OUT and new not in TERMINAL):
            new = old  # a timed-out run leaves that state only by finishing
        progress = int(_task_value(task, "progress") or 0)
        values: dict[str, Any] = {
            "state": new,
            "progress": 100 if new == COMPLETED else max(int(row["progress"] or 0), min(100, progress)),
            "polls": int(row["polls"] or 0) + 1,
            "not_found": 0,  # the gateway answered for this task: a run of 404s is broken
            "updated_at": self._stamp(),
        }
        for col, attr in (
            ("video_url", "video_url"), ("thumbnail_url", "thumbnail_url"), ("expires_at", "expires_at"),
            ("gateway_completed_at", "completed_at"),
        ):
            value = _task_value(task, attr)
            if value is not None:
                values[col] = value
        if row["submitted_at"] is None and _task_value(task, "created_at") is not None:
            values["submitted_at"] = float(_task_value(task, "created_at"))
        if new == FAILED and old != FAILED:
            values["error_code"] = _task_value(task, "error_code") or "failed"
            values["error_message"] = _task_value(task, "error_message") or "The gateway reported a failure."
        if new in TERMINAL and old not in TERMINAL:
            values["completed_at"] = now
        if new == COMPLETED and old != COMPLETED:  # drop a worker note: on a completed run it means "archive"
            values["error_code"] = None
            values["error_message"] = None
        if new == COMPLETED:
            # On a completed row error_code means "archiving failed"; before that it was a note or a reason.
            archived = row["video_path"] is not None or (old == COMPLETED and row["error_code"] is not None)
            values["next_poll_at"] = None if archived else (now if next_poll_at is None else next_poll_at)
        elif new == FAILED:
            values["next_poll_at"] = None
        elif new == TIMED_OUT:
            values["next_poll_at"] = next_poll_at  # the next slow check; None once they are over
        else:
            values["next_poll_at"] = now if next_poll_at is None else next_poll_at
        return values

    def apply_task(self, run_id: str, task: Task, next_poll_at: float | None) -> bool:
        """Copy a polled Task into the run; True when the state changed (pages re-render on that)."""
        now = self._now()
        c = runs_table.c
        with self._write() as conn:
            row = conn.execute(sa.select(runs_table).where(c.run_id == run_id)).mappings().first()
            if row is None:
                raise LedgerError(f"No run {run_id!r} in the ledger.")
            values = self._task_values(row, task, next_poll_at, now)
            conn.execute(sa.update(runs_table).where(c.run_id == run_id).values(**values))
            self._bump(conn)
        return values["state"] != row["state"]

    # ----------------------------------------------------------------- archive path
    def mark_archived(self, run_id: str, video_path: str, poster_path: str | None) -> None:
        self._update(
            run_id,
            video_path=str(video_path), poster_path=None if poster_path is None else str(poster_path),
            archived_at=self._now(), error_code=None, error_message=None, next_poll_at=None,
        )

    def mark_archive_error(self, run_id: str, code: str, message: str) -> None:
        """The video could not be kept (expired, too large, disk): the run stays completed, with words."""
        self._update(run_id, error_code=code, error_message=message, next_poll_at=None)
