"""A ledger written by commit e215a0f opens in today's History page (AppTest) with every run listed.

The ledger is written by the frozen copy of e215a0f's code (tests/fixtures/legacy) against a real local
gateway; the app is pointed at both, exactly as an upgraded install would be.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from lib import migrations
from lib.ui import history_view as hv
from tests.fixtures.legacy.scenario import write_legacy_ledger

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_history_lists_every_run_of_an_e215a0f_ledger(
    isolated: Path, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{isolated / 'legacy' / 'ledger.db'}"
    legacy = write_legacy_ledger(url, local_gateway.url, local_gateway.key,
                                 fail_next=lambda: local_gateway.control("fail_next", count=1))
    monkeypatch.setenv("PLAYGROUND_DB_URL", url)
    monkeypatch.setenv("TOAPIS_BASE_URL", local_gateway.url)

    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    frames = [d for d in at.dataframe if d.key == hv.TABLE_KEY]
    assert len(frames) == 1
    df = frames[0].value
    assert set(df["run_id"]) == set(legacy.ids.values())
    shown = dict(zip(df["run_id"], df["state"], strict=True))
    # the card's words (lib.state_words), not the raw states
    assert shown[legacy.ids["failed"]] == "Failed" and shown[legacy.ids["unknown"]] == "Outcome unknown"
    assert shown[legacy.ids["completed_archived"]] == "Done"
    assert f"Runs 1–{len(legacy.ids)} of {len(legacy.ids)}" in [c.value for c in at.caption]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert migrations.current(conn) == (migrations.head(),)  # upgraded in place, not recreated
    finally:
        engine.dispose()
