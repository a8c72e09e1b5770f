"""Takes through AppTest: the takes control on Compose and Compare, prices that count every take, the
budget words saying how many fit, and the strip (tiles + one synced bar) a press of takes is shown as."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib import presses
from lib.ledger import COMPLETED, Ledger
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "A paper lantern floating over a night lake, takes test"


def ledger(tmp: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp / 'ledger.db'}")


def compose() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [unescape_md(e.value) for e in getattr(at, kind)]


def generate(at: AppTest):
    found = [b for b in at.button if b.key == "compose_generate_button"]
    assert len(found) == 1
    return found[0]


def html_bodies(at: AppTest) -> str:
    return " ".join(str(getattr(h, "proto", h)) for h in at.get("html"))


def finish(at: AppTest, tmp: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        if sum(1 for r in ledger(tmp).list_runs(limit=50) if r.state == COMPLETED and r.video_path) >= n:
            at.run()
            return
        time.sleep(0.3)
    raise AssertionError("runs did not finish")


def test_compose_takes_are_priced_sent_as_one_group_and_drawn_as_a_synced_strip(isolated: Path) -> None:
    at = compose()
    assert at.segmented_control(key="compose_takes").options == ["1", "2", "3", "4"]
    at.text_area(key="compose_prompt").set_value(PROMPT).run()
    at.segmented_control(key="compose_takes").set_value(3).run()
    assert any("Cost 3 takes × ≈ $0.18 = ≈ $0.55 (estimate)" in m for m in texts(at, "markdown")), \
        texts(at, "markdown")
    assert generate(at).label == "Generate 3 takes · Std 720p · 5 s · ≈ $0.55"
    generate(at).click().run()
    generate(at).click().run()  # a second click at once: the same press, nothing new
    assert not at.exception, at.exception
    runs = ledger(isolated).list_runs(limit=10)
    assert len(runs) == 3 and len({r.group_id for r in runs}) == 1 and runs[0].group_id
    gid = runs[0].group_id
    assert any("Already sent — see the strip below" in i for i in texts(at, "info")), texts(at, "info")
    finish(at, isolated, 3)
    strip = at.get_by_key(f"strip_{gid[:10]}")
    tiles = [m.value for m in strip.get("markdown") if m.value.startswith("**Take")]
    assert tiles == ["**Take 1 of 3**", "**Take 2 of 3**", "**Take 3 of 3**"]
    assert any("badge[" in m.value and "3 takes" in m.value for m in strip.get("markdown"))  # st.badge
    body = html_bodies(at)
    key = f"takes-{gid[:10]}"
    assert f'data-sync-player=\\"{key}\\"' in body or f'data-sync-player="{key}"' in body, body[:2000]
    assert body.count(f'data-sp-group=\\"{key}\\"') + body.count(f'data-sp-group="{key}"') == 3
    # "Another take" on the strip adds a fourth take to the same group
    time.sleep(presses.GUARD)
    another = [b for b in at.button if b.key == f"strip_{gid[:10]}_another"]
    assert len(another) == 1 and another[0].label == "Another take · ≈ $0.18"
    another[0].click().run()
    group = ledger(isolated).group(gid)
    assert len(group) == 4 and group[-1].source == "rerun" and group[-1].parent_id == group[-2].run_id
    assert not at.exception, at.exception


def test_compose_takes_over_the_budget_say_how_many_fit_and_send_nothing(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "0.5")
    at = compose()
    at.text_area(key="compose_prompt").set_value(PROMPT).run()
    at.segmented_control(key="compose_takes").set_value(3).run()
    words = " ".join(texts(at, "error"))
    assert "Over budget: these 3 takes are estimated at $0.55" in words, words
    assert "Only 2 of the 3 takes fit: choose 2 takes." in words
    generate(at).click().run()
    assert ledger(isolated).count_runs() == 0
    refused = " ".join(texts(at, "error"))
    assert "These 3 takes are estimated at $0.55 ($0.18 a take)" in refused and "Nothing was sent." in refused
    at.segmented_control(key="compose_takes").set_value(2).run()
    time.sleep(presses.GUARD)
    generate(at).click().run()
    assert ledger(isolated).count_runs() == 2 and not at.exception


def test_a_compare_grid_with_takes_prices_every_take_and_draws_a_strip_per_cell(isolated: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/compare.py").run()
    at.text_area(key="cmp_prompt_0").set_value(PROMPT).run()
    at.segmented_control(key="cmp_takes").set_value(2).run()
    total = " ".join(texts(at, "markdown"))
    assert "for 4 runs (2 cells × 2 takes, each take its own run and charge)" in total, total
    assert any("2 takes × ≈ $0.18 = ≈ $0.37 (estimate)" in c for c in texts(at, "caption"))
    submit = next(b for b in at.button if b.key == "cmp_submit_grid")
    assert submit.label == "Submit grid · 4 runs · ≈ $0.99"
    submit.click().run()
    runs = ledger(isolated).list_runs(limit=10)
    assert len(runs) == 4 and sorted(r.label for r in runs) == ["pro", "pro", "std", "std"]
    finish(at, isolated, 4)
    for i in (0, 1):
        cell = at.get_by_key(f"cmp_cell_{i}")
        tiles = [m.value for m in cell.get("markdown") if m.value.startswith("**Take")]
        assert tiles == ["**Take 1 of 2**", "**Take 2 of 2**"], tiles
    rerun = [b for b in at.button if (b.key or "").startswith("cmp_rerun_grid_")]
    assert rerun[0].label == "Re-run this grid · 4 runs · ≈ $0.99"   # as many takes as it was made with
    assert at.segmented_control(key="cmp_takes").value == 2
    assert not at.exception, at.exception


def test_history_shows_a_take_as_a_normal_run_with_its_number(isolated: Path) -> None:
    from lib.contract import VideoRequest
    from lib.ledger import NewRun
    from lib.ui import history_view as hv

    req = VideoRequest(PROMPT, mode="std", duration=5)
    db = ledger(isolated)
    db.create_runs([NewRun(f"take-{i}", req, 0.184, group_id="g-hist") for i in range(3)])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/history.py").run()
    at.session_state[hv.TABLE_KEY] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    detail = " ".join(m.value for m in at.get_by_key("hist_detail").get("markdown"))
    assert "Take 3 of 3" in detail, detail                       # the newest row is the third take
    assert "Group: g-hist" in " ".join(texts(at, "caption"))
