"""A ledger row this code cannot read is an "unreadable run": listed, exported, never a crash, never worked.

Rows are damaged the way a hand edit, another tool or an old schema would leave them, in a real SQLite
file and (for what PostgreSQL's types allow) a real PostgreSQL: invalid JSON in params, a state word the
code does not know, text or NULL where a number belongs, a video path that leaves the archive.
"""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lib import history
from lib.contract import VideoRequest
from lib.ledger import (
    DRAFT,
    QUEUED,
    UNREADABLE,
    UNREADABLE_LABEL,
    Ledger,
    RunFilter,
    _to_run,
    bulk_insert,
    run_row,
    runs_table,
)

REQ = VideoRequest(prompt="a healthy fox", mode="std", duration=5)
GID = "GroupGroupGroupGroup01"


def corrupt(ledger: Ledger, run_id: str, **values: Any) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(runs_table).where(runs_table.c.run_id == run_id).values(**values))


def seed(ledger: Ledger, run_id: str, *, state: str = DRAFT, created: float | None = None,
         **cols: Any) -> str:
    row = run_row(run_id, REQ, 0.18, now=created or time.time(), state=state, group_id=GID)
    row.update(cols)
    bulk_insert(ledger, [row])
    return run_id


# what both backends can hold: text columns with text the code cannot use
DAMAGE = {
    "invalid-json": ({"params": "{not json"}, "its settings are not valid JSON"),
    "json-not-an-object": ({"params": "[1, 2]"}, "its settings are not a JSON object"),
    "json-null": ({"params": "null"}, "its settings are not a JSON object"),
    "prompt-not-text": ({"params": json.dumps({"prompt": 5})}, "its prompt is not text"),
    "urls-not-a-list": ({"params": json.dumps({"prompt": "p", "image_urls": 7})}, "image URLs"),
    "unknown-state": ({"state": "paused"}, "its state 'paused' is not one"),
    "path-leaves-archive": ({"video_path": "../../etc/passwd"}, "video path points outside the archive"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_row_is_an_unreadable_run_and_the_list_still_works(ledger: Ledger, damage: str) -> None:
    values, reason = DAMAGE[damage]
    now = time.time()
    before = seed(ledger, "healthy-run-before", created=now - 30)
    bad = seed(ledger, "damaged-run-000001", created=now - 20)
    after = seed(ledger, "healthy-run-after01", created=now - 10)
    corrupt(ledger, bad, **values)

    runs = ledger.list_runs()
    assert [r.run_id for r in runs] == [after, bad, before]  # one bad row breaks nothing around it
    run = runs[1]
    assert run.state == UNREADABLE and run.unreadable and run.params == {}
    assert reason in run.error_message and run.error_message.startswith("Unreadable run:")
    assert run.request == VideoRequest(prompt="")  # pages can still ask for its request
    assert ledger.get(bad) == run and [r.run_id for r in ledger.get_many([bad])] == [bad]
    assert ledger.count_runs() == 3 and len(list(ledger.iter_runs())) == 3
    assert bad not in {r.run_id for r in ledger.group(GID)}  # a grid has no cell for unknown settings

    rows = list(csv.DictReader(io.StringIO(ledger.to_csv())))
    shown = next(r for r in rows if r["run_id"] == bad)
    assert shown["state"] == UNREADABLE and shown["error_message"].startswith("Unreadable run:")
    table = history.table_rows(runs, now, lambda r: None)
    # the table says what the card says (lib.state_words); the prompt cell explains it
    assert table[1]["state"] == "Unreadable run" and UNREADABLE_LABEL in table[1]["prompt"]
    assert history.expiry_text(run, now) == "no video"


def test_the_worker_never_gets_an_unreadable_run_and_it_leaves_the_schedule(ledger: Ledger) -> None:
    now = time.time()
    good = seed(ledger, "healthy-draft-000001", created=now - 5)
    bad = seed(ledger, "damaged-draft-000001", created=now - 6)
    corrupt(ledger, bad, params="{not json")
    claimed = ledger.claim_due(now + 1, "worker-a")
    assert [r.run_id for r in claimed] == [good]  # the healthy run in the same batch is worked as usual
    with ledger.engine.connect() as conn:
        parked = conn.execute(sa.select(runs_table.c.next_poll_at, runs_table.c.lease_owner)
                              .where(runs_table.c.run_id == bad)).one()
    assert parked == (None, None)
    assert bad not in {r.run_id for r in ledger.claim_due(now + 600, "worker-b")}  # never handed out again


def test_sqlite_rows_with_text_or_null_where_a_number_belongs(tmp_path: Path) -> None:
    """SQLite stores whatever it is given; and an older schema may lack a NOT NULL (simulated by copying
    the table without its constraints)."""
    db = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}")
    now = time.time()
    for i in range(4):
        seed(ledger, f"run-number-{i:08d}", state=QUEUED, created=now - i)
    ledger.close()
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE runs_loose AS SELECT * FROM runs; DROP TABLE runs; ALTER TABLE runs_loose RENAME TO runs;
        UPDATE runs SET created_at = 'yesterday' WHERE run_id = 'run-number-00000001';
        UPDATE runs SET progress = NULL WHERE run_id = 'run-number-00000002';
        UPDATE runs SET est_cost = NULL, state = NULL WHERE run_id = 'run-number-00000003';
    """)
    con.commit()
    con.close()
    ledger = Ledger(f"sqlite:///{db}")
    try:
        runs = {r.run_id: r for r in ledger.list_runs()}
        assert runs["run-number-00000000"].state == QUEUED
        reasons = {rid: r.error_message for rid, r in runs.items() if r.unreadable}
        assert set(reasons) == {"run-number-00000001", "run-number-00000002", "run-number-00000003"}
        assert "created_at is not a number" in reasons["run-number-00000001"]
        assert "progress is empty" in reasons["run-number-00000002"]
        assert "state is empty" in reasons["run-number-00000003"]
        assert len(list(csv.DictReader(io.StringIO(ledger.to_csv(RunFilter()))))) == 4
    finally:
        ledger.close()


def test_to_run_of_a_row_without_even_a_run_id() -> None:
    run = _to_run({"run_id": None, "state": "queued", "params": "{}"})
    assert run.unreadable and run.run_id == "unreadable" and "run id" in run.error_message
