"""Compose's run cards while runs are in flight: what one second's tick costs and redraws.

The cards sit in a fragment with no timer; each run in flight ticks only its own bar; a watcher that
draws nothing reruns the cards only when the list looks different (lib/ui/card.py `live_runs`). Ticks
are driven here as a server drives them: a fragment-scoped rerun of one fragment (bench/fig2_pages.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench.fig2_pages import fragment_run, fragments, script_clock
from lib import live_reads
from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import IN_PROGRESS, Ledger, bulk_insert, run_row

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _in_flight(ledger: Ledger, run_id: str, progress: int) -> None:
    """A run in progress that the worker will not look at for an hour (nothing changes by itself)."""
    now = time.time()
    row = run_row(run_id, VideoRequest("A heron at dawn", duration=5), 0.18, now=now - 60, state=IN_PROGRESS,
                  task_id=f"task-{run_id}")
    row.update(submitted_at=now - 59, updated_at=now - 5, progress=progress, polls=3, next_poll_at=now + 3600)
    bulk_insert(ledger, [row])


@pytest.fixture
def page(isolated, monkeypatch):
    monkeypatch.setattr(live_reads, "TOKEN_AGE", 0.0)  # every tick reads the token afresh here
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    _in_flight(ledger, "tick-run-0001", 40)
    with script_clock() as clock:
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert not at.exception
        yield at, ledger, clock
    ledger.close()


def test_a_bar_tick_shows_new_progress_and_redraws_nothing_else(page):
    at, ledger, clock = page
    names = fragments(at)
    assert {"card.cards", "card.watch", "card._ticking_status"} <= set(names)
    assert [p.value for p in at.progress] == [40]
    ledger.apply_task("tick-run-0001", Task.from_payload(
        {"id": "task-tick-run-0001", "status": "in_progress", "progress": 70}), time.time() + 3600)
    fragment_run(at, names["card._ticking_status"], clock)
    assert not at.exception
    assert [p.value for p in at.progress] == [70]
    # the tick sent its bar and nothing else: no card, no button, no caption of the other cards
    assert not at.button and not at.caption and not at.markdown and not at.get("badge")


def test_with_nothing_changed_the_watcher_draws_nothing_and_reruns_nothing(page):
    at, _ledger, clock = page
    names = fragments(at)
    seen = at.session_state["_cards_seen_compose_runs"]
    fragment_run(at, names["card.watch"], clock)
    assert not at.exception
    assert not at.progress and not at.button and not at.caption
    assert at.session_state["_cards_seen_compose_runs"] == seen


def test_when_a_run_finishes_the_watcher_redraws_the_cards(page):
    at, ledger, clock = page
    names = fragments(at)
    ledger.apply_task("tick-run-0001", Task.from_payload(
        {"id": "task-tick-run-0001", "status": "completed", "progress": 100,
         "video_url": "http://127.0.0.1:9/v.mp4"}), None)
    fragment_run(at, names["card.watch"], clock)
    assert not at.exception
    # the card is redrawn as finished (its spending buttons appear, the bar is gone)…
    assert "card_promote_tick-run-0001" in [b.key for b in at.button]
    assert not at.progress
    # …by a rerun of the cards' fragment alone, not of the page: the sidebar and the form are not sent
    assert not at.sidebar.children and not at.text_area
    assert at.session_state["_cards_seen_compose_runs"][1][0][1] == "completed"
