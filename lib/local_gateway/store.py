"""SQLite store of the local gateway: accepted tasks, uploads, balance and the request log.

A file under the data dir (not memory) so that a restarted gateway still knows every task it accepted,
like the real one does. One connection guarded by a lock: every statement is tiny, and both the event
loop and the render thread use it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BALANCE_USD = 100.0
MAX_LOG_ROWS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    duration INTEGER NOT NULL,
    aspect TEXT NOT NULL,
    prompt TEXT NOT NULL,
    request_json TEXT NOT NULL,
    first_image TEXT,
    last_image TEXT,
    speed REAL NOT NULL,
    cost REAL NOT NULL,
    fail_code TEXT,
    fail_message TEXT,
    refunded INTEGER NOT NULL DEFAULT 0,
    rendered_at REAL,
    expired INTEGER NOT NULL DEFAULT 0,
    progress TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    name TEXT NOT NULL UNIQUE,
    filename TEXT,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    category TEXT NOT NULL,
    status INTEGER NOT NULL,
    task_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_t ON requests (t);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class TaskRow:
    id: str
    created_at: float
    model: str
    mode: str
    duration: int
    aspect: str
    prompt: str
    request: dict
    first_image: str | None
    last_image: str | None
    speed: float
    cost: float
    fail_code: str | None
    fail_message: str | None
    refunded: bool
    rendered_at: float | None
    expired: bool
    progress: str | None = None  # the clock's progress model: None = fast, "realistic:<seed>"


_SELECT_TASKS = (
    "SELECT id, created_at, model, mode, duration, aspect, prompt, request_json, first_image, "
    "last_image, speed, cost, fail_code, fail_message, refunded, rendered_at, expired, progress FROM tasks "
)
_INSERT_TASK = (
    "INSERT INTO tasks (id, created_at, model, mode, duration, aspect, prompt, request_json, "
    "first_image, last_image, speed, cost, fail_code, fail_message, refunded, rendered_at, expired, "
    "progress) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BALANCE = "SELECT key, value FROM kv WHERE key IN ('remain_usd', 'used_usd')"


def _task(row: tuple) -> TaskRow:
    (
        tid,
        created,
        model,
        mode,
        duration,
        aspect,
        prompt,
        req,
        first,
        last,
        speed,
        cost,
        fcode,
        fmsg,
        refunded,
        rendered,
        expired,
        progress,
    ) = row
    return TaskRow(
        tid,
        created,
        model,
        mode,
        int(duration),
        aspect,
        prompt,
        json.loads(req),
        first,
        last,
        float(speed),
        float(cost),
        fcode,
        fmsg,
        bool(refunded),
        rendered,
        bool(expired),
        progress,
    )


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(tasks)")}
        if "progress" not in columns:  # a data dir from before the progress models: every task was fast
            self._db.execute("ALTER TABLE tasks ADD COLUMN progress TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- tasks ----------------------------------------------------------------------------------------------
    def get_task(self, task_id: str) -> TaskRow | None:
        rows = self._exec(_SELECT_TASKS + "WHERE id = ?", (task_id,))
        return _task(rows[0]) if rows else None

    def unrendered_tasks(self) -> list[TaskRow]:
        rows = self._exec(
            _SELECT_TASKS + "WHERE rendered_at IS NULL AND fail_code IS NULL ORDER BY created_at"
        )
        return [_task(r) for r in rows]

    def unrefunded_failures(self) -> list[TaskRow]:
        rows = self._exec(_SELECT_TASKS + "WHERE fail_code IS NOT NULL AND refunded = 0")
        return [_task(r) for r in rows]

    def mark_rendered(self, task_id: str, when: float) -> None:
        self._exec("UPDATE tasks SET rendered_at = ? WHERE id = ?", (when, task_id))

    def set_failure(self, task_id: str, code: str, message: str) -> None:
        self._exec("UPDATE tasks SET fail_code = ?, fail_message = ? WHERE id = ?", (code, message, task_id))

    def expire(self, task_id: str | None) -> list[str]:
        """Mark one task (or every task) expired; returns the ids that changed."""
        with self._lock:
            if task_id is None:
                ids = [r[0] for r in self._db.execute("SELECT id FROM tasks WHERE expired = 0")]
            else:
                ids = [
                    r[0]
                    for r in self._db.execute("SELECT id FROM tasks WHERE id = ? AND expired = 0", (task_id,))
                ]
            self._db.executemany("UPDATE tasks SET expired = 1 WHERE id = ?", [(i,) for i in ids])
            return ids

    def count_tasks(self) -> int:
        return int(self._exec("SELECT COUNT(*) FROM tasks")[0][0])

    # -- uploads --------------------------------------------------------------------------------------------
    def add_upload(
        self,
        upload_id: str,
        created_at: float,
        name: str,
        filename: str | None,
        mime_type: str,
        size: int,
        sha256: str,
    ) -> None:
        self._exec(
            "INSERT INTO uploads (id, created_at, name, filename, mime_type, size, sha256) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (upload_id, created_at, name, filename, mime_type, size, sha256),
        )

    def get_upload(self, name: str) -> dict | None:
        rows = self._exec("SELECT id, name, mime_type, size FROM uploads WHERE name = ?", (name,))
        if not rows:
            return None
        uid, n, mime, size = rows[0]
        return {"id": uid, "name": n, "mime_type": mime, "size": size}

    # -- balance (USD) --------------------------------------------------------------------------------------
    def _kv_get(self, key: str, default: str) -> str:
        rows = self._exec("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def _kv_set_locked(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )

    def balance(self) -> tuple[float, float]:
        """(remaining, used) in USD."""
        return (
            float(self._kv_get("remain_usd", str(DEFAULT_BALANCE_USD))),
            float(self._kv_get("used_usd", "0")),
        )

    def set_balance(self, remain_usd: float) -> None:
        with self._lock:
            self._kv_set_locked("remain_usd", repr(float(remain_usd)))

    def charge(self, task: TaskRow) -> bool:
        """Insert the task and take its cost in one transaction; False (nothing written) if it cannot pay."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                kv = dict(db.execute(_BALANCE).fetchall())
                remain = float(kv.get("remain_usd", DEFAULT_BALANCE_USD))
                used = float(kv.get("used_usd", 0.0))
                if remain + 1e-9 < task.cost:
                    db.execute("ROLLBACK")
                    return False
                self._kv_set_locked("remain_usd", repr(round(remain - task.cost, 6)))
                self._kv_set_locked("used_usd", repr(round(used + task.cost, 6)))
                db.execute(
                    _INSERT_TASK,
                    (
                        task.id,
                        task.created_at,
                        task.model,
                        task.mode,
                        task.duration,
                        task.aspect,
                        task.prompt,
                        json.dumps(task.request),
                        task.first_image,
                        task.last_image,
                        task.speed,
                        task.cost,
                        task.fail_code,
                        task.fail_message,
                        int(task.refunded),
                        task.rendered_at,
                        int(task.expired),
                        task.progress,
                    ),
                )
                db.execute("COMMIT")
                return True
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def refund(self, task: TaskRow) -> None:
        """Give a failed task's cost back, once (failed tasks are refunded, docs/api-contract.md §7.4)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute("UPDATE tasks SET refunded = 1 WHERE id = ? AND refunded = 0", (task.id,))
                if cur.rowcount == 1:
                    kv = dict(db.execute(_BALANCE).fetchall())
                    remain = float(kv.get("remain_usd", DEFAULT_BALANCE_USD))
                    used = float(kv.get("used_usd", 0.0))
                    self._kv_set_locked("remain_usd", repr(round(remain + task.cost, 6)))
                    self._kv_set_locked("used_usd", repr(round(max(used - task.cost, 0.0), 6)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- request log ----------------------------------------------------------------------------------------
    def log_request(
        self, t: float, method: str, path: str, category: str, status: int, task_id: str | None
    ) -> None:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO requests (t, method, path, category, status, task_id) VALUES (?, ?, ?, ?, ?, ?)",
                (t, method, path, category, status, task_id),
            )
            seq = cur.lastrowid or 0
            if seq % 1000 == 0:  # keep the log bounded
                self._db.execute("DELETE FROM requests WHERE seq <= ?", (seq - MAX_LOG_ROWS,))

    def requests(self, category: str | None = None, since: float | None = None) -> list[dict]:
        sql = "SELECT t, method, path, category, status, task_id FROM requests WHERE 1=1"
        params: list[Any] = []
        if category:
            sql += " AND category = ?"
            params.append(category)
        if since is not None:
            sql += " AND t >= ?"
            params.append(since)
        rows = self._exec(sql + " ORDER BY seq", params)
        keys = ("t", "method", "path", "category", "status", "task_id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def clear_requests(self) -> None:
        self._exec("DELETE FROM requests")
