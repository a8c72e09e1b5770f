"""Migration 0005 (the presets table) upgrades a ledger at revision 0002 with runs, uploads and a change
count in place, on SQLite and PostgreSQL: every row is kept as it was, presets work at once, and the
downgrade removes only the new table."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from lib import migrations, presets
from lib.contract import VideoRequest
from lib.ledger import Ledger


def _engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


_COLUMNS: dict[str, list[str]] = {}  # each table's columns at 0002: later revisions (0003 owner) add others


def _rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        cols = _COLUMNS.setdefault(table, [c["name"] for c in sa.inspect(conn).get_columns(table)])
        listed = ", ".join(f'"{c}"' for c in cols)
        return sorted(map(tuple, conn.execute(sa.text(f'SELECT {listed} FROM "{table}"'))), key=repr)


def test_a_ledger_at_0002_with_runs_upgrades_and_keeps_every_row(ledger_url: str) -> None:
    _COLUMNS.clear()
    engine = _engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.config(conn), "0002")
        with engine.begin() as conn:  # data as the 0002 app wrote it, behind today's back
            for i, state in enumerate(("draft", "queued", "completed", "failed")):
                conn.execute(sa.text(
                    "INSERT INTO runs (run_id, created_at, updated_at, params, est_cost, mode, duration, "
                    "aspect_ratio, search_text, state, progress, source, polls, not_found, task_id) VALUES "
                    "(:id, :t, :t, :params, 0.18, 'std', 5, '16:9', :text, :state, 0, 'compose', 0, :nf, "
                    ":task)"),
                    {"id": f"run-{i}", "t": 1000.0 + i, "params": f'{{"prompt": "prompt {i}"}}',
                     "text": f"prompt {i}", "state": state, "nf": i, "task": None if i == 0 else f"task-{i}"})
            conn.execute(sa.text("INSERT INTO uploads (sha256, url, created_at) VALUES ('abc', "
                                 "'https://files.example/a.png', 1.0)"))
            conn.execute(sa.text("UPDATE ledger_meta SET changes = 41"))
        before = {t: _rows(engine, t) for t in ("runs", "uploads", "ledger_meta")}
        with engine.connect() as conn:
            assert migrations.current(conn) == ("0002",)
            assert not sa.inspect(conn).has_table("presets")
    finally:
        engine.dispose()

    led = Ledger(ledger_url)  # what the app does when it starts
    try:
        assert led.schema_revision == migrations.head()
        assert [r.run_id for r in led.list_runs(limit=10)] == ["run-3", "run-2", "run-1", "run-0"]
        assert led.changes() == (41,)
        saved = led.save_preset(presets.make("Kept", "upgrade", VideoRequest("after the upgrade")))
        assert led.get_preset(saved.preset_id or "") == saved
    finally:
        led.close()

    engine = _engine(ledger_url)
    try:
        assert {t: _rows(engine, t) for t in ("runs", "uploads", "ledger_meta")} == before
        with engine.connect() as conn:
            assert migrations.current(conn) == (migrations.head(),) and migrations.differences(conn) == []
        with engine.begin() as conn:
            command.downgrade(migrations.config(conn), "0002")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("presets")
        assert {t: _rows(engine, t) for t in ("runs", "uploads", "ledger_meta")} == before
    finally:
        engine.dispose()
