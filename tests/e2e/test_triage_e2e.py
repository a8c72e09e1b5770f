"""Triage in headless Chromium against `streamlit run`: a blind "Which is better?" on a real std/pro grid
(recorded once for a double click, labels revealed after the choice, counted in History's stats), then a
run rated, made a favourite and tagged on its Compose card, each a fragment rerun (no full-page rerun),
and still there after a reload. Screenshots at 1280×800 and 390×844."""
from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import DESKTOP, PHONE, ScriptRuns, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PROMPT = "A lighthouse at dusk, waves breaking, e2e triage"


def rows(db, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return list(con.execute(sql))
    finally:
        con.close()


def test_blind_verdict_then_rate_favourite_and_tag_a_run_and_reload(app_server, page):
    db = app_server.db_path
    runs = ScriptRuns(page)
    open_app(page, f"{app_server.url}/compare")
    box = page.locator(".st-key-cmp_prompt_0 textarea")
    box.fill(PROMPT)
    box.press("Tab")
    wait_for_app(page)
    page.get_by_role("button", name=re.compile(r"Submit grid · 2 runs")).click()
    page.wait_for_url(re.compile(r"/compare\?group="), timeout=30_000)
    verdicts = page.locator(".st-key-tri_grid_verdicts")
    expect(verdicts).to_be_visible(timeout=120_000)  # once both videos are archived
    wait_for_app(page)
    ids = {mode: run_id for run_id, mode in rows(db, "SELECT run_id, mode FROM runs")}
    assert set(ids) == {"std", "pro"}
    verdicts.scroll_into_view_if_needed()
    screenshot(page, "triage-1280x800-compare-verdict-row")

    verdicts.get_by_role("button", name="Choose").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    wait_for_app(page)
    sides = [dialog.locator(f".st-key-tri_side_{n} [data-testid=stMarkdownContainer]").first for n in "AB"]
    assert [s.inner_text().strip() for s in sides] == ["A", "B"]  # blind: no std/pro, no price
    assert "$" not in dialog.inner_text()
    screenshot(page, "triage-1280x800-compare-blind-dialog")
    dialog.get_by_role("button", name="A is better").dblclick()  # a double click is one verdict
    reveal = dialog.locator(".st-key-tri_reveal")
    expect(reveal).to_contain_text("You chose A", timeout=30_000)
    wait_for_app(page)
    judged = rows(db, "SELECT winner, blind, judge FROM run_verdicts")
    assert len(judged) == 1 and judged[0][1] == 1 and judged[0][2] == ""
    winner_mode = "pro" if judged[0][0] == ids["pro"] else "std"
    expect(reveal).to_contain_text(f"You chose A: {winner_mode} (")
    expect(reveal).to_contain_text("The labels were hidden until you chose.")
    screenshot(page, "triage-1280x800-compare-revealed")
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_have_count(0)

    # Compose: the std run's card; a star and the favourite switch rerun only the marks row
    open_app(page, app_server.url)
    row = page.locator(f".st-key-card_tri_{ids['std']}")
    expect(row).to_be_visible(timeout=30_000)
    before = runs.snapshot()
    row.get_by_role("radio", name="4 out of 5 stars").click()
    wait_for_app(page)
    expect(row.get_by_role("radio", name="4 out of 5 stars")).to_have_attribute("aria-checked", "true")
    row.get_by_text("Favourite", exact=True).click()
    wait_for_app(page)
    after = runs.snapshot()
    assert after[0] == before[0], (before, after)  # no full-page rerun for a mark
    assert after[1] >= before[1] + 2, (before, after)
    row.get_by_role("button", name="Add tags or a note").click()
    body = page.locator("[data-testid=stPopoverBody]").filter(has=page.get_by_role("textbox", name="Tags"))
    body.get_by_role("textbox", name="Tags").fill("Keeper, <script>alert(1)</script>, Ünïcode ✓")
    body.get_by_role("textbox", name="Note").fill("Best light of the batch")
    body.get_by_role("button", name="Save").click()
    wait_for_app(page)
    errors = page.locator("[data-testid=stAlertContentError]")
    expect(errors.filter(has_text="25 characters; at most 24")).to_be_visible()  # refused in words
    body.get_by_role("textbox", name="Tags").fill("Keeper, <b>x</b>, Ünïcode ✓")
    body.get_by_role("button", name="Save").click()
    wait_for_app(page)
    expect(page.get_by_text("Tags and note saved.")).to_be_visible()
    page.keyboard.press("Escape")
    marks = rows(db, f"SELECT rating, favourite, tags, note FROM run_triage WHERE run_id = '{ids['std']}'")
    assert marks == [(4, 1, '["keeper", "<b>x</b>", "ünïcode ✓"]', "Best light of the batch")]
    assert runs.snapshot()[0] == before[0]
    screenshot(page, "triage-1280x800-card")

    page.reload()  # the ledger is the truth
    wait_for_app(page)
    row = page.locator(f".st-key-card_tri_{ids['std']}")
    expect(row.get_by_role("radio", name="4 out of 5 stars")).to_have_attribute("aria-checked", "true",
                                                                                timeout=30_000)
    expect(row.get_by_role("switch", name="Favourite").or_(row.get_by_role("checkbox", name="Favourite"))
           ).to_be_checked()
    expect(row.get_by_text("#<b>x</b>")).to_be_visible()  # shown as characters, not markup
    expect(page.get_by_text("Note: Best light of the batch")).to_be_visible()
    page.set_viewport_size(PHONE)
    row.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    screenshot(page, "triage-390x844-card")

    # History's stats count the blind verdict
    page.set_viewport_size(DESKTOP)
    page.goto(f"{app_server.url}/history")
    wait_for_app(page)
    expect(page.get_by_text("Runs 1–2 of 2")).to_be_visible()
    page.locator(".st-key-hist_triage_filters").get_by_text("Favourites only").click()
    wait_for_app(page)
    expect(page.get_by_text("1 run", exact=True)).to_be_visible()  # only the favourite, filtered in SQL
    screenshot(page, "triage-1280x800-history-filters")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    expect(page.locator(".st-key-hist_more_switch").get_by_text("1 filter on")).to_be_visible()
    page.locator(".st-key-hist_more_switch").get_by_text("More filters").click()  # a phone's filters
    wait_for_app(page)
    screenshot(page, "triage-390x844-history-filters")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("tab", name="Spend and stats").click()
    wait_for_app(page)
    stats = page.locator(".st-key-hist_verdicts")
    pro_won = winner_mode == "pro"
    expect(stats).to_contain_text("Pro beat std once in 1 verdict (100%); blind, 1 of 1" if pro_won else
                                  "Pro beat std 0 times in 1 verdict (0%); blind, 0 of 1", timeout=30_000)
    stats.scroll_into_view_if_needed()
    screenshot(page, "triage-1280x800-history-stats")

    # the phone: the verdict row and the dialog
    page.set_viewport_size(PHONE)
    page.go_back()
    page.go_back()
    page.goto(page.url if "/compare" in page.url else f"{app_server.url}/compare?group="
              + rows(db, "SELECT group_id FROM runs LIMIT 1")[0][0])
    wait_for_app(page)
    verdicts = page.locator(".st-key-tri_grid_verdicts")
    expect(verdicts).to_contain_text("Your choice:", timeout=30_000)
    verdicts.scroll_into_view_if_needed()
    screenshot(page, "triage-390x844-compare-verdict-row")
    verdicts.get_by_role("button", name="Change my choice").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    wait_for_app(page)
    screenshot(page, "triage-390x844-compare-blind-dialog")
