"""One rate limit per API key for every process on a ledger: the gateway's limits, kept in the database.

Why: the gateway counts submits (5/s) and status checks (50/s) per API key, not per process. With one
limiter per process, three web processes and two workers on one key could together send five times the
allowance and draw 429s. Here every process consults one sliding-window log in the ledger's database (no
new service): `rate_calls` holds a row per call and `rate_buckets` a row per (key, bucket) that each
acquisition locks (PostgreSQL: SELECT … FOR UPDATE on that row; SQLite: BEGIN IMMEDIATE, the file's write
lock, which covers processes on one machine). The rules are lib/ratelimit.py's, with the same interface
(acquire, slot, pause, paused_for), so lib/services.py can use either:
- a call made through slot() counts from its answer (a row with done_at NULL is on the wire and counts as
  "now and later"), so the gateway never sees n + 1 calls inside one of its windows;
- a 429's Retry-After pause is written to the bucket's row, so every process waits it out;
- a process that dies mid-call leaves a row with done_at NULL: it stops counting after ORPHAN_AFTER.
Times are the database's clock on PostgreSQL (processes on several machines agree on it) and the local
clock on SQLite (one machine). The key is never stored: rows are keyed by a SHA-256 prefix of it.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from lib.fleet_tables import rate_buckets_table, rate_calls_table
from lib.ratelimit import DEFAULT_LIMITS

log = logging.getLogger(__name__)

ALL = "*"               # the bucket row holding a pause for every bucket
ORPHAN_AFTER = 60.0     # a call still "on the wire" after this long belonged to a process that died
_MAX_NAP = 0.25         # longest single wait: a pause set by another process is seen promptly
_PRUNE_EVERY = 200      # acquisitions between deletions of rows no window can need any more


def key_hash(api_key: str) -> str:
    """The name the key's buckets go by: 16 hex digits of SHA-256, never the key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


class SharedRateLimiter:
    """lib.ratelimit.RateLimiter's rules, shared by every process whose limiter uses the same database
    and API key. Buckets not in `limits` have no window but honour pause() (uploads)."""

    def __init__(
        self,
        engine: Engine,
        api_key: str,
        limits: Mapping[str, tuple[int, float]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        chosen = dict(DEFAULT_LIMITS if limits is None else limits)
        for bucket, (count, window) in chosen.items():
            if count < 1 or window <= 0:
                raise ValueError(f"limit for {bucket!r} must be at least 1 call per positive window")
        self._engine = engine
        self._key = key_hash(api_key)
        self._limits = chosen
        self._sleep = sleep
        self._pg = engine.dialect.name == "postgresql"
        self._known: set[str] = set()
        self._known_lock = threading.Lock()
        self._count = 0
        self._ensure([ALL, *chosen])

    def __repr__(self) -> str:
        return f"SharedRateLimiter(key={self._key}, limits={self._limits!r}, db={self._engine.dialect.name})"

    @property
    def limits(self) -> dict[str, tuple[int, float]]:
        return dict(self._limits)

    # ------------------------------------------------------------------ database plumbing
    @contextmanager
    def _txn(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(ledger_write=True)  # SQLite: BEGIN IMMEDIATE (lib/ledger.py's hook)
            with conn.begin():
                yield conn

    def _now(self, conn: Connection) -> float:
        if self._pg:
            return float(conn.execute(sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
        return time.time()

    def _ensure(self, buckets: list[str]) -> None:
        """Create the (key, bucket) rows once, so every acquisition has a row to lock."""
        with self._known_lock:
            missing = [b for b in buckets if b not in self._known]
        if not missing:
            return
        dialect = pg_dialect if self._pg else sqlite_dialect
        with self._txn() as conn:
            for bucket in missing:
                conn.execute(dialect.insert(rate_buckets_table)
                             .values(key_hash=self._key, bucket=bucket, paused_until=None)
                             .on_conflict_do_nothing())
        with self._known_lock:
            self._known.update(missing)

    def _paused_until(self, conn: Connection, bucket: str, *, lock: bool) -> float:
        t = rate_buckets_table.c
        own = sa.select(t.paused_until).where(t.key_hash == self._key, t.bucket == bucket)
        if lock and self._pg:
            own = own.with_for_update()  # every acquisition of this bucket, in every process, queues here
        mine = conn.execute(own).scalar_one_or_none()
        every = conn.execute(sa.select(t.paused_until).where(t.key_hash == self._key, t.bucket == ALL)
                             ).scalar_one_or_none()
        return max(mine or float("-inf"), every or float("-inf"))

    # ------------------------------------------------------------------ the interface
    def _try(self, bucket: str, *, on_wire: bool) -> tuple[float, float, int | None]:
        """One locked look: (now, ready_at, call id). ready_at <= now means the call was recorded."""
        self._ensure([bucket])
        c = rate_calls_table.c
        with self._txn() as conn:
            paused = self._paused_until(conn, bucket, lock=True)
            now = self._now(conn)
            ready = paused
            limit = self._limits.get(bucket)
            if limit is not None and ready <= now:
                count, window = limit
                rows = conn.execute(
                    sa.select(c.done_at).where(
                        c.key_hash == self._key, c.bucket == bucket,
                        sa.or_(c.done_at > now - window,
                               sa.and_(c.done_at.is_(None), c.taken_at > now - ORPHAN_AFTER)),
                    )
                ).scalars().all()
                on_the_wire = sum(1 for d in rows if d is None)
                stamps = sorted(d for d in rows if d is not None)
                if on_the_wire >= count:
                    ready = now + 0.02   # wait for an answer to come back
                elif len(stamps) + on_the_wire >= count:
                    ready = max(ready, stamps[-(count - on_the_wire)] + window)
            if ready > now:
                return now, ready, None
            call_id: int | None = None
            if limit is not None:
                call_id = conn.execute(
                    sa.insert(rate_calls_table).values(key_hash=self._key, bucket=bucket, taken_at=now,
                                                       done_at=None if on_wire else now)
                    .returning(c.id)
                ).scalar_one()
            self._count += 1
            if self._count % _PRUNE_EVERY == 0:
                horizon = max((w for _, w in self._limits.values()), default=1.0)
                conn.execute(sa.delete(rate_calls_table).where(
                    c.key_hash == self._key,
                    sa.or_(c.done_at < now - horizon - 1.0, sa.and_(c.done_at.is_(None),
                                                                    c.taken_at < now - ORPHAN_AFTER)),
                ))
            return now, now, call_id

    def _acquire(self, bucket: str, timeout: float | None, *, on_wire: bool) -> tuple[bool, int | None]:
        started = time.monotonic()
        while True:
            now, ready, call_id = self._try(bucket, on_wire=on_wire)
            if ready <= now:
                return True, call_id
            wait = ready - now
            if timeout is not None:
                left = timeout - (time.monotonic() - started)
                if wait > left:
                    if left > 0:
                        self._sleep(left)
                    return False, None
            self._sleep(min(wait, _MAX_NAP))

    def acquire(self, bucket: str, timeout: float | None = None) -> bool:
        """Block until a call in `bucket` is allowed for every process and record it; False on timeout."""
        return self._acquire(bucket, timeout, on_wire=False)[0]

    @contextmanager
    def slot(self, bucket: str) -> Iterator[None]:
        """Acquire, then count the call from when its answer came (or it failed), as RateLimiter does."""
        _, call_id = self._acquire(bucket, None, on_wire=True)
        try:
            yield
        finally:
            if call_id is not None:
                self._finish(call_id)

    def _finish(self, call_id: int) -> None:
        c = rate_calls_table.c
        for attempt in range(3):
            try:
                with self._txn() as conn:
                    conn.execute(sa.update(rate_calls_table).where(c.id == call_id)
                                 .values(done_at=self._now(conn)))
                return
            except sa.exc.OperationalError:  # a busy ledger: the row would otherwise count until orphaned
                log.warning("could not close rate-limit call %s (try %d)", call_id, attempt + 1)
                time.sleep(0.2 * (attempt + 1))

    def pause(self, seconds: float, bucket: str | None = None) -> None:
        """No process acquires `bucket` (all buckets when None) before now + seconds; never shortens."""
        if seconds <= 0:
            return
        name = ALL if bucket is None else bucket
        self._ensure([name])
        t = rate_buckets_table.c
        with self._txn() as conn:
            until = self._now(conn) + seconds
            conn.execute(
                sa.update(rate_buckets_table)
                .where(t.key_hash == self._key, t.bucket == name)
                .values(paused_until=sa.case((t.paused_until > until, t.paused_until), else_=until))
            )
        log.info("shared rate limiter paused %s for %.2f s", bucket or "all buckets", seconds)

    def paused_for(self, bucket: str) -> float:
        """Seconds until `bucket` is no longer paused, for every process (0 when it is not)."""
        with self._engine.connect() as conn, conn.begin():
            until = self._paused_until(conn, bucket, lock=False)
            now = self._now(conn)
        return max(0.0, until - now)


def limiter_kind(db_url_backend: str, setting: str, *, worker: str) -> str:
    """"shared" or "process" for PLAYGROUND_RATE_LIMIT (auto|shared|process); see lib/config.py."""
    if setting in ("shared", "process"):
        return setting
    return "shared" if db_url_backend == "postgresql" or worker != "on" else "process"


def describe(limiter: Any) -> str:
    return "shared through the ledger" if isinstance(limiter, SharedRateLimiter) else "per process"
