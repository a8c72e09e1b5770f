"""How runs that ended without a video look on Compose (AppTest): timed out, and forgotten by the gateway.

The words are the worker's own (lib.worker), the runs real ledger rows; the app's worker runs meanwhile
but has nothing to do for them (no slow check due), so the page is drawn exactly as a user would see it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import TASK_GONE_CODE, Ledger
from lib.ui.text import unescape_md
from lib.worker import task_gone_words, timed_out_words

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def ledger(isolated: Path) -> Any:
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    yield led
    led.close()


def sent(ledger: Ledger, prompt: str, task_id: str) -> str:
    run_id = Ledger.new_id()
    ledger.create_run(run_id, VideoRequest(prompt=prompt), 0.18)
    assert ledger.claim_for_submit(run_id)
    ledger.mark_submitted(run_id, Task(id=task_id, status="queued", progress=0), time.time() + 3600)
    return run_id


def test_timed_out_and_forgotten_runs_say_so_and_nothing_counts_as_in_flight(ledger: Ledger) -> None:
    late = sent(ledger, "a glacier calving, slow motion", "task_late_0001")
    ledger.mark_timed_out(late, timed_out_words(1800, 600, 86400), time.time() + 600)
    gone = sent(ledger, "a comet over a desert", "task_gone_0001")
    ledger.mark_unknown(gone, task_gone_words("task_gone_0001", 3), TASK_GONE_CODE)

    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    at.run()
    assert not at.exception, at.exception
    badges = " ".join(m.value for m in at.main.markdown)
    assert "Timed out" in badges and "Outcome unknown" in badges
    warnings = [unescape_md(w.value) for w in at.main.warning]
    assert any(w.startswith("Timed out: the gateway had not finished this run 30 minutes after it was sent")
               and "every 10 minutes until 24 hours after sending" in w for w in warnings), warnings
    assert any(w.startswith("The gateway no longer knows this task (task_gone_0001)") for w in warnings)
    # Neither run has anything to recover (both have their task id) or a progress bar.
    assert not [t for t in at.text_input if t.label == "Recover by task id"]
    assert not at.main.get("progress")
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "No runs in flight" in sidebar and "in flight ·" not in sidebar
