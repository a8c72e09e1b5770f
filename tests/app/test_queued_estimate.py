"""A queued run's card on Compose (AppTest): a moving bar and the measured "usually ~40 s", not "0 %"."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import Ledger, bulk_insert, run_row
from lib.ui.text import unescape_md

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def ledger(isolated: Path) -> Any:
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    yield led
    led.close()


def test_a_queued_card_shows_a_moving_bar_and_the_median_of_its_kind(ledger: Ledger) -> None:
    now = time.time()
    for took in (35.0, 40.0, 44.0):  # three finished std 5 s runs: median 40 s from send to done (+1 s)
        row = run_row(Ledger.new_id(), VideoRequest("an old run"), 0.184, now=now - 3000, state="completed")
        row.update(submitted_at=now - 3000 + 1, completed_at=now - 3000 + 1 + took, next_poll_at=None)
        bulk_insert(ledger, [row])
    run_id = Ledger.new_id()
    ledger.create_run(run_id, VideoRequest(prompt="a heron in the rain"), 0.184)
    assert ledger.claim_for_submit(run_id)
    # queued at 0 %, next look in an hour: the worker leaves it as it is while the page is read
    ledger.mark_submitted(run_id, Task(id="task_queued_0001", status="queued", progress=0), now + 3600)

    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    at.run()
    assert not at.exception, at.exception
    card = at.get_by_key(f"card_{run_id}")
    captions = [unescape_md(c.value) for c in card.caption]
    assert any(c.startswith("usually ~40 s (median of 3 finished std 5 s runs) · waiting ")
               for c in captions), captions
    assert not any("0%" in c or "Elapsed" in c for c in captions), captions
    assert not card.get("progress"), "no empty 0 % bar"
    bars = [h.proto.body for h in card.get("html")]
    assert any('role="progressbar"' in b and 'aria-label="Queued"' in b for b in bars), bars
    # History says the same words as the card
    assert "Queued" in " ".join(m.value for m in card.markdown)
