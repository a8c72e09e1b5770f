"""Migration 0006 (run_triage, run_verdicts) upgrades a ledger at 0005 holding runs (with owners), an
upload, a preset and a change count, on SQLite and PostgreSQL: every row of every old table is kept as it
was, marks and verdicts work at once, and the downgrade to 0005 removes only the two new tables."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from lib import migrations
from lib.ledger import Ledger, RunFilter

OLD_TABLES = ("runs", "uploads", "ledger_meta", "presets")


def _engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        cols = ", ".join(f'"{c["name"]}"' for c in sa.inspect(conn).get_columns(table))
        return sorted(map(tuple, conn.execute(sa.text(f'SELECT {cols} FROM "{table}"'))), key=repr)


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_a_ledger_at_0005_with_runs_upgrades_keeps_every_row_and_downgrades(ledger_url: str) -> None:
    engine = _engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.config(conn), "0005")
        with engine.begin() as conn:  # data as the 0005 app wrote it
            for i, state in enumerate(("draft", "queued", "completed", "failed", "completed")):
                conn.execute(sa.text(
                    "INSERT INTO runs (run_id, created_at, updated_at, params, est_cost, mode, duration, "
                    "aspect_ratio, search_text, state, progress, source, polls, not_found, owner, "
                    "owner_name) VALUES (:id, :t, :t, :params, 0.18, :mode, 5, '16:9', :text, :state, 0, "
                    "'compose', 0, 0, :owner, :name)"),
                    {"id": f"run-{i}", "t": 1000.0 + i, "params": f'{{"prompt": "prompt {i}"}}',
                     "mode": "pro" if i == 4 else "std", "text": f"prompt {i}", "state": state,
                     "owner": "alice" if i % 2 else None, "name": "Alice" if i % 2 else None})
            conn.execute(sa.text("INSERT INTO uploads (sha256, url, created_at) VALUES ('abc', "
                                 "'https://files.example/a.png', 1.0)"))
            conn.execute(sa.text("INSERT INTO presets (preset_id, name, name_key, tags, params, fingerprint, "
                                 "created_at, updated_at) VALUES ('p1', 'Fox', 'fox', '[]', '{\"prompt\": "
                                 "\"a fox\"}', 'f', 1.0, 1.0)"))
            conn.execute(sa.text("UPDATE ledger_meta SET changes = 41"))
        before = {t: _rows(engine, t) for t in OLD_TABLES}
        assert not {"run_triage", "run_verdicts"} & _tables(engine)
    finally:
        engine.dispose()

    led = Ledger(ledger_url)  # what the app does when it starts
    try:
        assert led.schema_revision == migrations.head()
        assert [r.run_id for r in led.list_runs(limit=10)] == [f"run-{i}" for i in range(4, -1, -1)]
        assert led.changes() == (41,)
        assert led.get_triage("run-2").empty  # every old run starts unmarked
        led.set_triage("run-2", rating=5, favourite=True, tags="kept")
        led.record_verdict("run-2", "run-4", "run-4", blind=True)
        assert [r.run_id for r in led.list_runs(RunFilter(min_rating=5))] == ["run-2"]
        assert led.verdict_stats().overall.pro_wins == 1
    finally:
        led.close()

    engine = _engine(ledger_url)
    try:
        after = {t: _rows(engine, t) for t in OLD_TABLES}
        assert after["runs"] == before["runs"] and after["uploads"] == before["uploads"]
        assert after["presets"] == before["presets"]
        with engine.connect() as conn:
            assert migrations.current(conn) == (migrations.head(),) and migrations.differences(conn) == []
        with engine.begin() as conn:
            command.downgrade(migrations.config(conn), "0005")
        assert not {"run_triage", "run_verdicts"} & _tables(engine)
        kept = {t: _rows(engine, t) for t in ("runs", "uploads", "presets")}
        assert kept == {t: before[t] for t in ("runs", "uploads", "presets")}
    finally:
        engine.dispose()
