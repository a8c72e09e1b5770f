"""History page through AppTest: table, filters, paging, detail panel, export, stats, recover by task id.

Runs are seeded straight into the app's own ledger file (an isolated SQLite file per test); recover talks
real HTTP to the embedded local gateway the app starts.
"""
from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from streamlit.testing.v1 import AppTest

from lib.config import LOCAL_API_KEY
from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from lib.ui import history_view as hv
from lib.ui import state

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
EVIL = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](https://evil.test) **bold**"


@pytest.fixture
def ledger(isolated: Path) -> Any:
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    yield led
    led.close()


def seed(ledger: Ledger, prompt: str = "a red fox", *, state_: str = "completed", mode: str = "std",
         duration: int = 5, created: float | None = None, **cols: Any) -> str:
    run_id = cols.pop("run_id", None) or Ledger.new_id()
    created = time.time() - 600 if created is None else created
    req = VideoRequest(prompt=prompt, mode=mode, duration=duration, aspect_ratio=cols.pop("aspect", "16:9"),
                       negative_prompt=cols.pop("negative_prompt", None))
    row = run_row(run_id, req, cols.pop("est_cost", 0.184), now=created, state=state_,
                  task_id=f"task_{run_id[:12]}")
    if state_ in ("completed", "failed"):
        row.update(submitted_at=created + 1, completed_at=created + 31, next_poll_at=None)
    else:  # seeded task ids are not on the gateway: keep the worker from looking them up
        row.update(submitted_at=created + 1, next_poll_at=time.time() + 3600)
    row.update(cols)
    bulk_insert(ledger, [row])
    return run_id


def history_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest) -> Any:
    frames = [d for d in at.dataframe if d.key == hv.TABLE_KEY]
    assert len(frames) == 1
    return frames[0].value


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_table_shows_every_column_newest_first(ledger: Ledger) -> None:
    now = time.time()
    old = seed(ledger, "an old fox", created=now - 7200, video_path="videos/xxxxxxxx.mp4",
               archived_at=now - 7000, poster_path="posters/xxxxxxxx.jpg")
    new = seed(ledger, "a new whale", mode="pro", duration=10, created=now - 60, state_="in_progress",
               progress=40)
    at = history_page()
    df = table(at)
    assert list(df.columns) == [*hv.history.TABLE_COLUMNS, *hv.triage_controls.COLUMNS]
    assert list(df["run_id"]) == [new, old]
    assert list(df["prompt"]) == ["a new whale", "an old fox"]
    assert list(df["state"]) == ["Generating 40%", "Done"]
    assert list(df["mode"]) == ["pro", "std"] and list(df["duration"]) == ["10 s", "5 s"]
    assert list(df["video"]) == ["not finished", "archived"]
    assert df["poster"][1].endswith("/archive/posters/xxxxxxxx.jpg") and pd.isna(df["poster"][0])
    assert list(df["time_to_finish"]) == ["—", "30 s"]
    assert "1 run" not in captions(at) and "Runs 1–2 of 2" in captions(at)


def test_filters_text_state_mode_duration_and_dates(ledger: Ledger) -> None:
    day = datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()
    fox = seed(ledger, "red fox", created=day)
    whale = seed(ledger, "blue whale", mode="pro", duration=10, created=day + 86400)
    failed = seed(ledger, "red balloon", state_="failed", created=day + 2 * 86400,
                  error_code="content_policy", error_message="refused")
    at = history_page()
    assert len(table(at)) == 3
    at.text_input(key=hv.TEXT_KEY).set_value("RED").run()
    assert set(table(at)["run_id"]) == {fox, failed}
    at.multiselect(key=hv.STATES_KEY).set_value(["failed"]).run()
    assert list(table(at)["run_id"]) == [failed]
    at.text_input(key=hv.TEXT_KEY).set_value("").run()
    at.multiselect(key=hv.STATES_KEY).set_value([]).run()
    at.button_group(key=hv.MODES_KEY).set_value(["pro"]).run()
    assert list(table(at)["run_id"]) == [whale]
    at.button_group(key=hv.MODES_KEY).set_value([]).run()
    at.button_group(key=hv.DURATIONS_KEY).set_value([5]).run()
    assert set(table(at)["run_id"]) == {fox, failed}
    at.button_group(key=hv.DURATIONS_KEY).set_value([]).run()
    at.date_input(key=hv.DATES_KEY).set_value((date(2026, 3, 11), date(2026, 3, 12))).run()
    assert set(table(at)["run_id"]) == {whale, failed}
    at.text_input(key=hv.TEXT_KEY).set_value("no such prompt").run()
    assert len(table(at)) == 0
    assert "No runs match these filters." in [i.value for i in at.info]
    assert not at.exception


def test_paging_in_the_database(ledger: Ledger) -> None:
    now = time.time()
    ids = [seed(ledger, f"prompt number {i:03d}", created=now - 1000 - i) for i in range(120)]
    at = history_page()
    assert len(table(at)) == hv.history.PAGE_SIZE
    pager = at.get("pagination")[0]
    assert pager.proto.num_pages == 5
    pager.set_value(2).run()
    df = table(at)
    assert list(df["run_id"]) == ids[25:50]
    assert "Runs 26–50 of 120" in captions(at)
    # a filter change goes back to page 1
    at.text_input(key=hv.TEXT_KEY).set_value("number 1").run()  # matches 100..119
    assert "Runs 1–20 of 20" in captions(at)
    assert list(table(at)["run_id"]) == ids[100:120]
    assert not at.get("pagination")


def test_selecting_a_row_opens_the_detail_panel(ledger: Ledger) -> None:
    now = time.time()
    seed(ledger, EVIL, mode="pro", duration=10, aspect="9:16", negative_prompt="blurry", created=now - 90,
         video_path="videos/abcabcab.mp4", poster_path="posters/abcabcab.jpg", archived_at=now - 50)
    seed(ledger, "another run", created=now - 3000)
    at = history_page()
    at.session_state[hv.TABLE_KEY] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Selected run"]
    assert at.get("video")[0].proto.url.endswith("/archive/videos/abcabcab.mp4")
    assert at.get_by_key("hist_prompt").code[0].value == EVIL  # the whole prompt, as typed
    settings = at.get_by_key("hist_facts_settings").dataframe[0].value
    facts = dict(zip(settings.iloc[:, 0], settings.iloc[:, 1], strict=True))
    assert facts["Mode"] == "pro (1080p)" and facts["Duration"] == "10 s" and facts["Aspect ratio"] == "9:16"
    assert facts["Negative prompt"] == "blurry" and facts["Resolution"] == "1080×1920"
    timings = at.get_by_key("hist_facts_timings").dataframe[0].value
    tfacts = dict(zip(timings.iloc[:, 0], timings.iloc[:, 1], strict=True))
    assert tfacts["Time to finish"] == "30 s" and tfacts["Video"] == "archived"
    assert tfacts["Cost"] == "≈ $0.18 (estimate)"
    # the card's actions are there (re-run, share, ...)
    labels = [b.label for b in at.button]
    assert "Re-run" in labels and "Open in compare" in labels
    # never interpreted as markup anywhere on the page
    for md in at.markdown:
        assert "<script>" not in md.value and "onerror" not in md.value
        assert "](https://evil.test)" not in md.value


def test_selection_survives_nothing_stale_after_filtering(ledger: Ledger) -> None:
    seed(ledger, "first")
    at = history_page()
    at.session_state[hv.TABLE_KEY] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert [s.value for s in at.subheader] == ["Selected run"]
    at.text_input(key=hv.TEXT_KEY).set_value("zzz").run()
    assert [s.value for s in at.subheader] == []


def test_export_button_and_stats_tab(ledger: Ledger) -> None:
    now = time.time()
    seed(ledger, "a", created=now - 100, est_cost=0.2)
    seed(ledger, "b", mode="pro", duration=10, created=now - 100, est_cost=0.625)
    seed(ledger, "c", state_="failed", created=now - 100, est_cost=3.0)
    at = history_page()
    export = at.get("download_button")
    assert [b.proto.label for b in export] == ["Export CSV"] and not export[0].proto.disabled
    assert not at.metric  # the costly stats run only while their tab is open
    at.session_state[hv.TABS_KEY] = hv.TAB_STATS
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Runs": "3", "Success rate": "67%", "Completed / failed": "2 / 1"}
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    # streamlit-extras' chart_container: the chart, the numbers behind it and their CSV in three tabs
    spend = at.get_by_key("hist_spend")
    assert [t.label for t in spend.tabs] == list(hv.SPEND_TABS)
    days = spend.tabs[1].dataframe[0].value
    assert list(days.columns) == ["estimated USD"] and days.index.name == "day"
    assert round(float(days["estimated USD"].sum()), 4) == 0.825  # the failed run is not billed
    assert [b.proto.label for b in spend.tabs[2].get("download_button")] == ["Download data as .csv"]
    medians = at.get_by_key("hist_medians").dataframe[0].value
    assert set(medians["mode"]) == {"std", "pro"}
    # no runs at all: export disabled, a helpful empty message
    at.text_input(key=hv.TEXT_KEY).set_value("nothing matches").run()
    assert at.get("download_button")[0].proto.disabled


def _gateway(services: Any) -> str:
    assert services.local_gateway is not None, "the app should run on the embedded local gateway"
    return services.local_gateway.url


def test_recover_by_task_id_joins_the_ledger_and_is_followed(ledger: Ledger) -> None:
    at = history_page()
    services = state.services()
    resp = requests.post(f"{_gateway(services)}/v1/videos/generations",
                         json={"model": "kling-v3", "prompt": "made with curl", "duration": 5},
                         headers={"Authorization": f"Bearer {LOCAL_API_KEY}"}, timeout=10)
    resp.raise_for_status()
    task_id = resp.json()["id"]
    at.text_input(key=hv.RECOVER_KEY).set_value(f"  {task_id} ")
    at.button(key="FormSubmitter:hist_recover_form-Recover").click().run()
    assert not at.exception
    run = ledger.get_by_task(task_id)
    assert run is not None and run.source == "recovered"
    assert any(task_id in s.value.replace("\\", "") for s in at.success)
    assert run.run_id in set(table(at)["run_id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ledger.get(run.run_id).state != "completed":
        time.sleep(0.3)
    assert ledger.get(run.run_id).state == "completed"
    at.run()
    assert table(at)["state"][0] == "Done"
    # the gateway saw exactly one submit: recovering never submits again
    log = requests.get(f"{_gateway(services)}/__control/requests", params={"category": "submit"}, timeout=10)
    data = log.json()
    assert len(data["requests"] if isinstance(data, dict) else data) == 1


def test_recover_errors_in_words(ledger: Ledger) -> None:
    at = history_page()
    at.text_input(key=hv.RECOVER_KEY).set_value("not a task id; drop table")
    at.button(key="FormSubmitter:hist_recover_form-Recover").click().run()
    assert any("does not look like a task id" in e.value for e in at.error)
    assert ledger.count_runs() == 0
    # a well-formed id the gateway does not know: the gateway is asked first, and nothing is saved
    at.text_input(key=hv.RECOVER_KEY).set_value("task_doesnotexist0001")
    at.button(key="FormSubmitter:hist_recover_form-Recover").click().run()
    words = " ".join(e.value for e in at.error).replace("\\", "")
    assert "No task with that id on this gateway" in words and "API key" not in words
    assert ledger.get_by_task("task_doesnotexist0001") is None and ledger.count_runs() == 0
    assert at.session_state[hv.RECOVER_KEY] == "task_doesnotexist0001"  # the typed id is kept to fix


def test_a_new_run_arriving_does_not_move_the_selection_to_another_run(ledger: Ledger) -> None:
    now = time.time()
    seed(ledger, "the run I clicked", created=now - 60)
    seed(ledger, "an older run", created=now - 600)
    at = history_page()
    at.session_state[hv.TABLE_KEY] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.get_by_key("hist_prompt").code[0].value == "the run I clicked"
    seed(ledger, "a run that just arrived", created=now)  # newest first: it takes row 0
    at.run()
    assert at.get_by_key("hist_prompt").code[0].value == "the run I clicked"
