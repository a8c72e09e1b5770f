"""Opening the ledger: the engine per backend, the schema upgrade on open, and short transactions.

Its own module because every concept module (reads, creating runs, the work queue, reports, uploads)
writes through the same few primitives: `_write` (the backend's write lock), `_read`, `_bump` (the change
token) and `_stamp` (updated_at that never repeats). Ledger is a Store plus one mixin per concept.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from lib import migrations
from lib.ledger.model import LedgerError, LedgerTooNew
from lib.ledger.schema import meta_table, runs_table


class Store:
    """One Engine on one ledger URL, its schema brought up to date on open; safe from any thread."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time, echo: bool = False) -> None:
        self._clock = clock
        self._stamp_lock = threading.Lock()
        self._last_stamp = 0.0
        self.url = sa.engine.make_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine = self._make_engine(echo)
        try:
            self.schema_revision = self._upgrade_schema()
        except BaseException:
            self.engine.dispose()
            raise

    # ----------------------------------------------------------------- engine set-up
    def _make_engine(self, echo: bool) -> Engine:
        if self.dialect == "sqlite":
            return self._sqlite_engine(echo)
        return sa.create_engine(
            self.url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20, future=True
        )

    def _sqlite_engine(self, echo: bool) -> Engine:
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file::memory"):
            # Each pooled connection would get its own empty database: worker and pages would disagree.
            raise LedgerError("The ledger needs a SQLite file (sqlite:////path/ledger.db), not :memory:.")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            self.url,
            echo=echo,
            pool_size=10,
            max_overflow=20,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's implicit one is deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the lock up front: a deferred transaction that read first and then writes can
            # fail with SQLITE_BUSY without waiting (snapshot too old), which busy_timeout cannot help.
            immediate = conn.get_execution_options().get("ledger_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _upgrade_schema(self) -> str:
        """Create or upgrade the tables (lib/migrations) and return the schema revision now in place.

        Under the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the advisory lock e215a0f's
        create_all took too), so processes starting together migrate once; a ledger newer than this app
        is refused in words, with the transaction rolled back and nothing written.
        """
        if self.dialect not in ("sqlite", "postgresql"):
            raise LedgerError(f"Unsupported database {self.dialect!r}: use SQLite or PostgreSQL.")
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7361001)"))
            try:
                return migrations.upgrade(conn)
            except migrations.UnknownRevision as exc:
                where = self.url.render_as_string(hide_password=True)
                raise LedgerTooNew(where, ", ".join(exc.revisions), exc.head) from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(ledger_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    def _bump(conn: Connection) -> None:
        """Count one committed change; always the last statement of a write transaction (see meta_table)."""
        meta = meta_table.c
        conn.execute(sa.update(meta_table).where(meta.id == 1).values(changes=meta.changes + 1))

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Ledger({self.url.render_as_string(hide_password=True)!r})"

    def _now(self) -> float:
        return float(self._clock())

    def _stamp(self) -> float:
        """updated_at: strictly increasing within this process, so changes() sees every write."""
        with self._stamp_lock:
            stamp = max(time.time(), self._last_stamp + 1e-6)
            self._last_stamp = stamp
            return stamp

    @staticmethod
    def new_id() -> str:
        """Unguessable id for runs and groups: share links are capabilities. Never starting with '-':
        a CSV export would guard it as a formula ('-…) and the id there would no longer match."""
        while (ident := secrets.token_urlsafe(16)).startswith("-"):
            pass
        return ident

    def _insert_ignore(self, table: sa.Table, values: Mapping[str, Any], key: str) -> Any:
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        if self.dialect == "postgresql":
            return pg_dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        raise LedgerError(f"Unsupported database {self.dialect!r}: use SQLite or PostgreSQL.")

    def _update(self, run_id: str, **values: Any) -> None:
        values["updated_at"] = self._stamp()
        c = runs_table.c
        with self._write() as conn:
            if conn.execute(sa.update(runs_table).where(c.run_id == run_id).values(**values)).rowcount != 1:
                raise LedgerError(f"No run {run_id!r} in the ledger.")
            self._bump(conn)

    def _execute_write(self, stmt: Any) -> bool:
        """One UPDATE in its own transaction; counts as a change only when it matched a row."""
        with self._write() as conn:
            changed = conn.execute(stmt).rowcount == 1
            if changed:
                self._bump(conn)
        return changed
