"""The durable run ledger: every run, its request, its gateway task and its archive, in one table.

The ledger, not the browser session, is the source of truth. A row is written (state "draft") before the
gateway is called, so a reload, a closed tab or a killed server loses nothing, and the atomic
draft -> submitting transition makes "submit this run" happen at most once however many times it is asked.

SQLAlchemy Core over a SQLite file (WAL) by default; the same code runs on PostgreSQL
(``postgresql+psycopg://…``), where several app processes share one ledger and their workers claim due
runs with ``SELECT … FOR UPDATE SKIP LOCKED`` plus a lease, so no run is worked on twice at once.

Scheduling invariant: ``next_poll_at`` is when a worker should next look at a run; NULL means "nothing to
do" (failed, archived, unknown). That keeps ``claim_due`` an index range scan however large history grows.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from lib import migrations

if TYPE_CHECKING:
    from lib.contract import VideoRequest
    from lib.gateway import Task

log = logging.getLogger(__name__)

DRAFT = "draft"
SUBMITTING = "submitting"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
UNKNOWN = "unknown"
# Sent, but not finished by the deadline after submit: no longer in flight (nothing is re-sent, pages stop
# ticking for it), still billed, and still checked slowly so a late finish is archived (-> completed).
TIMED_OUT = "timed_out"
STATES = (DRAFT, SUBMITTING, QUEUED, IN_PROGRESS, COMPLETED, FAILED, UNKNOWN, TIMED_OUT)
ACTIVE = frozenset({DRAFT, SUBMITTING, QUEUED, IN_PROGRESS})
TERMINAL = frozenset({COMPLETED, FAILED})
SOURCES = ("compose", "compare", "recovered", "rerun", "promote", "extend")
# Not a state a run can be in: what a row this code cannot read (invalid JSON in params, a state word it
# does not know, a NULL or a text where a number belongs) is shown as, so that one bad row never breaks
# a list. Such a run has no settings and is never handed to the worker.
UNREADABLE = "unreadable"
UNREADABLE_LABEL = "unreadable run"

# Gateway task status -> ledger state ("submitted" is the legacy spelling of queued).
_STATUS_TO_STATE = {
    "queued": QUEUED,
    "submitted": QUEUED,
    "in_progress": IN_PROGRESS,
    "completed": COMPLETED,
    "failed": FAILED,
}

TIMED_OUT_CODE = "timed_out"
TASK_GONE_CODE = "task_gone"  # an unknown run whose task the gateway answered 404 for, several times in a row
STALE_SUBMIT_CODE = "submit_interrupted"
STALE_SUBMIT_MESSAGE = (
    "The app stopped while sending this run; it may or may not have reached the gateway — "
    "recover it by task id or re-submit."
)
# How long a "submitting" claim stays valid: the submit POST has a 35 s worst case (5 s connect + 30 s
# read) plus rate-limiter waits, so 120 s never cuts off a live submit but still notices a dead one.
SUBMIT_LEASE = 120.0

metadata = sa.MetaData()

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("est_cost", sa.Double, nullable=False, server_default="0"),
    sa.Column("mode", sa.String(16)),
    sa.Column("duration", sa.Integer),
    sa.Column("aspect_ratio", sa.String(16)),
    sa.Column("search_text", sa.Text, nullable=False, server_default=""),
    sa.Column("task_id", sa.String(200)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("submitted_at", sa.Double),
    sa.Column("completed_at", sa.Double),
    sa.Column("gateway_completed_at", sa.Double),
    sa.Column("video_url", sa.Text),
    sa.Column("thumbnail_url", sa.Text),
    sa.Column("expires_at", sa.Double),
    sa.Column("video_path", sa.Text),
    sa.Column("poster_path", sa.Text),
    sa.Column("archived_at", sa.Double),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("group_id", sa.String(64)),
    sa.Column("parent_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="SET NULL")),
    sa.Column("label", sa.String(200)),
    sa.Column("source", sa.String(16), nullable=False, server_default="compose"),
    sa.Column("next_poll_at", sa.Double),
    sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", sa.Double),
    sa.Column("not_found", sa.Integer, nullable=False, server_default="0"),  # 404s in a row (migration 0002)
)
sa.Index("ix_runs_created", runs_table.c.created_at.desc(), runs_table.c.run_id.desc())
sa.Index("ix_runs_state_due", runs_table.c.state, runs_table.c.next_poll_at)
sa.Index("ix_runs_group", runs_table.c.group_id)
sa.Index("ix_runs_parent", runs_table.c.parent_id)
sa.Index("ix_runs_updated", runs_table.c.updated_at)
sa.Index(
    "ux_runs_task_id",
    runs_table.c.task_id,
    unique=True,
    sqlite_where=runs_table.c.task_id.isnot(None),
    postgresql_where=runs_table.c.task_id.isnot(None),
)

# One row counting committed writes to runs: the live fragment's change token. Every write transaction
# increments it as its last statement, so the row lock orders the increments like the commits; a
# max(updated_at) token can miss a write whose stamp was taken before a concurrent, earlier-committed one.
# (Called `version` until migration 0002: "version" now means the schema's, see lib/migrations.)
meta_table = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("changes", sa.BigInteger, nullable=False, server_default="0"),
)

uploads_table = sa.Table(
    "uploads",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("filename", sa.Text),
    sa.Column("local_path", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
)

# States a worker may have work for (submit, poll, archive, a timed-out run's slow check); others never
# get a next_poll_at.
_WORKABLE = (DRAFT, QUEUED, IN_PROGRESS, COMPLETED, TIMED_OUT)

CSV_COLUMNS = (
    "run_id", "created", "state", "mode", "duration", "aspect_ratio", "prompt", "negative_prompt",
    "image_urls", "est_cost_usd", "billed", "task_id", "progress", "seconds_to_finish", "completed",
    "archived", "expires", "error_code", "error_message", "group_id", "parent_id", "label", "source",
)


class LedgerError(Exception):
    """A ledger operation that cannot be done as asked (words for the user, no SQL)."""


class LedgerTooNew(LedgerError):
    """The ledger's schema is at a revision this app does not know: a newer version of the app wrote it.

    Raised by Ledger() before anything is written; str() says what is wrong and what to do (a start-up
    error page shows it as is). `revision` is the ledger's, `head` the newest this app knows."""

    def __init__(self, where: str, revision: str, head: str) -> None:
        self.where, self.revision, self.head = where, revision, head
        super().__init__(
            f"The ledger at {where} was written by a newer version of this app: its schema is at revision "
            f"{revision!r}, and this version only knows revisions up to {head!r}. Nothing was changed. "
            "Run the newer version of the app with this ledger (for example after a git pull), or point "
            "PLAYGROUND_DB_URL at another ledger."
        )


@dataclass(frozen=True)
class Run:
    """One row of the runs table, as plain values (the worker and the pages never see SQL rows)."""

    run_id: str
    created_at: float
    updated_at: float
    params: dict
    est_cost: float
    task_id: str | None
    state: str
    progress: int
    submitted_at: float | None
    completed_at: float | None  # when the ledger saw it finish
    gateway_completed_at: float | None
    video_url: str | None
    thumbnail_url: str | None
    expires_at: float | None
    video_path: str | None
    poster_path: str | None
    archived_at: float | None
    error_code: str | None
    error_message: str | None
    group_id: str | None
    parent_id: str | None
    label: str | None
    source: str
    next_poll_at: float | None
    polls: int
    mode: str | None = None  # effective mode (default applied); None for a recovered run of unknown params
    duration: int | None = None
    aspect_ratio: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    not_found: int = 0  # the gateway's 404 answers to status checks since its last readable answer

    @property
    def request(self) -> VideoRequest:
        from lib.contract import VideoRequest  # lazy: the ledger must not need the contract to load

        return VideoRequest.from_dict(self.params)

    @property
    def billed(self) -> bool:
        """False when the gateway cannot have charged: failed runs and runs never sent.

        "unknown" counts as billed: it may have reached the gateway, and a budget must assume it did.
        """
        return self.state not in (DRAFT, FAILED)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def unreadable(self) -> bool:
        """The ledger row could not be read (see UNREADABLE); error_message says what was wrong."""
        return self.state == UNREADABLE

    @property
    def archive_failed(self) -> bool:
        """A completed run whose video could not be archived (the reason is in error_code/message)."""
        return self.state == COMPLETED and self.video_path is None and self.error_code is not None

    @property
    def seconds_to_finish(self) -> float | None:
        if self.state != COMPLETED or self.completed_at is None or self.submitted_at is None:
            return None
        return max(0.0, self.completed_at - self.submitted_at)


_RUN_FIELDS = tuple(f.name for f in fields(Run))

# PostgreSQL advisory lock key every budgeted Ledger.create_runs takes (7361001 guards schema creation).
BUDGET_LOCK = 7361002


@dataclass(frozen=True)
class NewRun:
    """One draft run for Ledger.create_runs (the arguments of create_run, as a value)."""

    run_id: str
    request: Any  # VideoRequest | Mapping
    est_cost: float
    group_id: str | None = None
    parent_id: str | None = None
    label: str | None = None
    source: str = "compose"


@dataclass(frozen=True)
class Creation:
    """What Ledger.create_runs did: every run (in the order given) or a refusal with the numbers."""

    runs: tuple[Run, ...] = ()
    created: tuple[bool, ...] = ()   # per run: False = the id existed already (a repeated press)
    refused: bool = False            # over budget: nothing was written
    spent: float = 0.0               # committed spend seen under the lock, before this write (with a budget)
    cost: float = 0.0                # est_cost of the runs that were new
    budget: float | None = None

    @property
    def n_created(self) -> int:
        return sum(self.created)


@dataclass(frozen=True)
class RunFilter:
    """History filters; every one is applied in SQL so paging stays cheap at any size."""

    text: str | None = None  # substring of prompt/negative prompt (case-insensitive), or an exact task/run id
    states: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()
    since: float | None = None  # created_at >= since
    until: float | None = None  # created_at < until
    group_id: str | None = None


def _search_text(params: Mapping[str, Any]) -> str:
    parts = [str(params.get("prompt") or ""), str(params.get("negative_prompt") or "")]
    return "\n".join(p for p in parts if p).lower()


def _request_dict(request: Any) -> dict[str, Any]:
    if request is None:
        return {}
    if isinstance(request, Mapping):
        return dict(request)
    return dict(request.to_dict())


def _effective(request: Any, params: Mapping[str, Any]) -> tuple[str | None, int | None, str | None]:
    """(mode, duration, aspect) with the gateway defaults applied, stored as columns for filtering."""
    if request is None or not params:
        return None, None, None
    if isinstance(request, Mapping):
        from lib.contract import VideoRequest

        request = VideoRequest.from_dict(request)
    return request.effective_mode, request.effective_duration, request.effective_aspect


def run_row(
    run_id: str,
    request: Any,
    est_cost: float,
    *,
    now: float,
    state: str = DRAFT,
    group_id: str | None = None,
    parent_id: str | None = None,
    label: str | None = None,
    source: str = "compose",
    task_id: str | None = None,
) -> dict[str, Any]:
    """The column values of a new run; public so bulk loaders (tests, benchmarks) write the same rows."""
    params = _request_dict(request)
    mode, duration, aspect = _effective(request, params)
    row: dict[str, Any] = dict.fromkeys(runs_table.c.keys())  # every column: executemany needs one shape
    row.update({
        "run_id": run_id,
        "created_at": now,
        "updated_at": now,
        "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
        "est_cost": float(est_cost),
        "mode": mode,
        "duration": duration,
        "aspect_ratio": aspect,
        "search_text": _search_text(params),
        "task_id": task_id,
        "state": state,
        "progress": 0,
        "group_id": group_id,
        "parent_id": parent_id,
        "label": label,
        "source": source,
        "next_poll_at": now if state in _WORKABLE else None,
        "polls": 0,
        "not_found": 0,
    })
    return row


_REQUIRED_NUMBERS = ("created_at", "updated_at", "est_cost")
_OPTIONAL_NUMBERS = ("submitted_at", "completed_at", "gateway_completed_at", "expires_at", "archived_at",
                     "next_poll_at", "lease_until")
_REQUIRED_COUNTS = ("progress", "polls", "not_found")
_REQUIRED_TEXT = ("run_id", "state", "source")
_PARAM_TEXT = ("prompt", "negative_prompt", "mode", "aspect_ratio")


_WARNED: set[str] = set()


class _Unreadable(Exception):
    """Why a row cannot become a Run (words for the card and the log)."""


def _number(name: str, value: Any, *, required: bool, whole: bool = False) -> Any:
    if value is None:
        if required:
            raise _Unreadable(f"{name} is empty")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unreadable(f"{name} is not a number")
    if isinstance(value, float) and not (abs(value) < float("inf")):
        raise _Unreadable(f"{name} is not a finite number")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise _Unreadable(f"{name} is not a whole number")
        return int(value)
    return float(value)


def _params(raw: Any) -> dict[str, Any]:
    """The request JSON, checked for the shapes VideoRequest.from_dict and the pages rely on."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise _Unreadable("its settings are not text")
    try:
        params = json.loads(raw)
    except ValueError:
        raise _Unreadable("its settings are not valid JSON") from None
    if not isinstance(params, dict):
        raise _Unreadable("its settings are not a JSON object")
    for key in _PARAM_TEXT:
        if params.get(key) is not None and not isinstance(params[key], str):
            raise _Unreadable(f"its {key.replace('_', ' ')} is not text")
    duration = params.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | str)):
        raise _Unreadable("its duration is neither a number nor text")
    urls = params.get("image_urls")
    if urls is not None and not isinstance(urls, str) and (
            not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise _Unreadable("its image URLs are not a list of text")
    if params.get("watermark") is not None and not isinstance(params["watermark"], bool):
        raise _Unreadable("its watermark setting is not true or false")
    return params


def _read_row(row: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: row.get(name) for name in _RUN_FIELDS}
    for name in _REQUIRED_TEXT:
        if not isinstance(values[name], str) or not values[name]:
            raise _Unreadable(f"its {name.replace('_', ' ')} is empty or not text")
    if values["state"] not in STATES:
        raise _Unreadable(f"its state {values['state'][:24]!r} is not one this version of the app knows")
    for name in _REQUIRED_NUMBERS + _OPTIONAL_NUMBERS:
        values[name] = _number(name, values[name], required=name in _REQUIRED_NUMBERS)
    for name in _REQUIRED_COUNTS:
        values[name] = _number(name, values[name], required=True, whole=True)
    values["duration"] = _number("duration", values["duration"], required=False, whole=True)
    numbers = {*_REQUIRED_NUMBERS, *_OPTIONAL_NUMBERS, *_REQUIRED_COUNTS, "duration", "params"}
    for name, value in values.items():
        if name not in numbers and value is not None and not isinstance(value, str):
            raise _Unreadable(f"its {name.replace('_', ' ')} is not text")
    for name in ("video_path", "poster_path"):  # stored relative to the archive; never a way out of it
        value = values[name]
        if value is not None and ("\x00" in value or ".." in value.replace("\\", "/").split("/")):
            raise _Unreadable(f"its {name.replace('_', ' ')} points outside the archive")
    values["params"] = _params(values["params"])
    return values


def _to_run(row: Mapping[str, Any]) -> Run:
    """A Run, or for a row this code cannot read an UNREADABLE run that says why (never an exception:
    one bad row must not break a list, a page or the worker)."""
    try:
        return Run(**_read_row(row))
    except _Unreadable as exc:
        return _unreadable_run(row, str(exc))


def _unreadable_run(row: Mapping[str, Any], reason: str) -> Run:
    run_id = row.get("run_id")
    run_id = run_id if isinstance(run_id, str) and run_id else "unreadable"
    if run_id not in _WARNED:  # pages read it every second: say it once per process, not once per read
        if len(_WARNED) < 1000:
            _WARNED.add(run_id)
        log.warning("ledger row %r cannot be read (%s); shown as an unreadable run", run_id[:64], reason)

    def kept(name: str) -> Any:
        value = row.get(name)
        return value if isinstance(value, int | float) and not isinstance(value, bool) and (
            abs(value) < float("inf")) else None

    task_id = row.get("task_id")
    created = float(kept("created_at") or 0.0)
    return Run(
        run_id=run_id, created_at=created, updated_at=float(kept("updated_at") or created),
        params={}, est_cost=0.0, task_id=task_id if isinstance(task_id, str) else None, state=UNREADABLE,
        progress=0, submitted_at=None, completed_at=None, gateway_completed_at=None, video_url=None,
        thumbnail_url=None, expires_at=None, video_path=None, poster_path=None, archived_at=None,
        error_code=UNREADABLE,
        error_message=f"Unreadable run: its record in the ledger cannot be read ({reason}). It is kept as it "
                      "is and left alone; nothing is sent or charged for it.",
        group_id=None, parent_id=None, label=None, source="compose", next_poll_at=None, polls=0,
    )


def _task_value(task: Any, name: str) -> Any:
    return getattr(task, name, None)


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


class Ledger:
    """All reads and writes of runs and uploads; one Engine, short transactions, safe from any thread."""

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

    # ----------------------------------------------------------------- creating runs
    def _insert_ignore(self, table: sa.Table, values: Mapping[str, Any], key: str) -> Any:
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        if self.dialect == "postgresql":
            return pg_dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        raise LedgerError(f"Unsupported database {self.dialect!r}: use SQLite or PostgreSQL.")

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

    # ----------------------------------------------------------------- reading runs
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
        return conds

    def list_runs(self, flt: RunFilter | None = None, limit: int = 50, offset: int = 0) -> list[Run]:
        """Newest first, filtered and paged in the database (index on created_at desc)."""
        flt = flt or RunFilter()
        c = runs_table.c
        stmt = (
            sa.select(runs_table)
            .where(*self._where(flt))
            .order_by(c.created_at.desc(), c.run_id.desc())
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
                conds.append(sa.tuple_(c.created_at, c.run_id) < sa.tuple_(*last))
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

    # ----------------------------------------------------------------- submit path
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

    # ----------------------------------------------------------------- polling path
    def _task_values(self, row: Mapping[str, Any], task: Any, next_poll_at: float | None,
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
            rows: Sequence[Mapping[str, Any]] = []
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

    # ----------------------------------------------------------------- money and numbers
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
            counts = dict(conn.execute(sa.select(c.state, sa.func.count()).group_by(c.state)).all())
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
        for run in self.iter_runs(flt):
            p = run.params
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
                )
            ]

    def to_csv(self, flt: RunFilter | None = None) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in self.csv_rows(flt):
            writer.writerow(row)
        return buf.getvalue()

    # ----------------------------------------------------------------- uploads
    def add_upload(self, sha256: str, url: str, filename: str | None, local_path: str | None) -> None:
        """Remember an uploaded image by content hash so the same file is not uploaded twice."""
        values = {"sha256": sha256, "url": url, "filename": filename,
                  "local_path": None if local_path is None else str(local_path), "created_at": self._now()}
        ins = (sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert)(uploads_table)
        stmt = ins.values(**values).on_conflict_do_update(
            index_elements=["sha256"],
            set_={"url": values["url"], "filename": values["filename"], "local_path": values["local_path"]},
        )
        with self._write() as conn:
            conn.execute(stmt)

    def find_upload(self, sha256: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(uploads_table).where(uploads_table.c.sha256 == sha256)
            ).mappings().first()
        return dict(row) if row else None


def bulk_insert(ledger: Ledger, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert prepared run_row() dicts in one executemany (imports, benchmarks, scale tests)."""
    with ledger._write() as conn:
        conn.execute(sa.insert(runs_table), [dict(r) for r in rows])
        ledger._bump(conn)


# The tables the processes on one ledger share besides runs (worker heartbeats, the shared rate limit),
# registered on `metadata` here so the migrations and their model check see one schema.
from lib import fleet_tables as _fleet_tables  # noqa: E402,F401
