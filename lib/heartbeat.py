"""Worker heartbeats in the ledger: which workers are alive, so a page can say when none is.

Why: with PLAYGROUND_WORKER=off a web process only writes drafts; a standalone worker
(`python -m lib.worker`) sends them. If none is running, runs would sit as "queued" with no explanation.
Each worker refreshes its row every few seconds (from its loop, so a stuck worker stops beating too);
a page that sees no fresh row and a draft older than expected says so in words. The row is removed on a
clean stop; a killed worker's row simply goes stale.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from lib import ledger as L
from lib.fleet_tables import workers_table

BEAT_EVERY = 5.0    # seconds between a worker's refreshes
STALE_AFTER = 30.0  # a row this old belongs to a worker that stopped or hangs
NO_WORKER_WORDS = ("No worker is running: runs are queued until one starts. Start one with "
                   "`python -m lib.worker` (this server runs with PLAYGROUND_WORKER=off).")


class Heartbeat:
    """Writes this process's worker rows and answers "is any worker alive?"."""

    def __init__(self, ledger: L.Ledger, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock
        self._last: dict[str, float] = {}
        self._started = clock()

    def beat(self, owner: str, *, threads: int = 0, force: bool = False) -> None:
        """Refresh `owner`'s row (at most every BEAT_EVERY seconds unless forced)."""
        now = self.clock()
        if not force and now - self._last.get(owner, float("-inf")) < BEAT_EVERY:
            return
        self._last[owner] = now
        values = {"owner": owner[:200], "host": socket.gethostname()[:255], "pid": os.getpid(),
                  "threads": threads, "started_at": self._started, "seen_at": now}
        dialect = pg_dialect if self.ledger.dialect == "postgresql" else sqlite_dialect
        stmt = dialect.insert(workers_table).values(**values).on_conflict_do_update(
            index_elements=["owner"], set_={"seen_at": now, "threads": threads})
        with self.ledger.engine.connect() as conn:
            conn.execution_options(ledger_write=True)
            with conn.begin():
                conn.execute(stmt)

    def gone(self, owner: str) -> None:
        """A clean stop: the worker's row goes at once (no 30 s of "a worker is alive" after it left)."""
        self._last.pop(owner, None)
        with self.ledger.engine.connect() as conn:
            conn.execution_options(ledger_write=True)
            with conn.begin():
                conn.execute(sa.delete(workers_table).where(workers_table.c.owner == owner))

    def alive(self) -> int:
        """How many workers beat within STALE_AFTER seconds."""
        since = self.clock() - STALE_AFTER
        with self.ledger.engine.connect() as conn, conn.begin():
            return int(conn.execute(sa.select(sa.func.count()).select_from(workers_table)
                                    .where(workers_table.c.seen_at >= since)).scalar_one())


def oldest_waiting_draft(ledger: L.Ledger) -> float | None:
    """When the oldest draft nobody has taken was made (None: no draft waits)."""
    c = L.runs_table.c
    with ledger.engine.connect() as conn, conn.begin():
        value = conn.execute(sa.select(sa.func.min(c.created_at))
                             .where(c.state == L.DRAFT, c.lease_owner.is_(None))).scalar_one_or_none()
    return None if value is None else float(value)


def no_worker_notice(ledger: L.Ledger, heartbeat: Heartbeat, *, grace: float = 10.0) -> str | None:
    """The page's words when a draft has waited longer than `grace` seconds and no worker is alive."""
    oldest = oldest_waiting_draft(ledger)
    if oldest is None or heartbeat.clock() - oldest < grace:
        return None
    return None if heartbeat.alive() else NO_WORKER_WORDS
