"""Issue 14 items 4 and 8 in Chromium: a card's spending buttons say what they make and cost, and a
queued card says how long runs of its kind usually take, under a moving bar (one app server)."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import Ledger
from tests.fixtures.servers import PHONE, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


def _to_top(page) -> None:
    size = page.viewport_size or {"width": 390, "height": 800}
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(400)


def test_card_buttons_name_their_price_and_a_queued_card_its_estimate(app_server, page, browser):
    open_app(page, app_server.url)
    generate = page.locator(".st-key-compose_generate button")
    expect(generate).to_have_text(re.compile(r"Generate · Std 720p · 5 s · ≈ \$0\.18"))
    page.locator(".st-key-compose_prompt textarea").fill("A kite over a windy beach, e2e words")
    generate.click()
    ledger = Ledger(f"sqlite:///{app_server.db_path}")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = ledger.list_runs(limit=5)
            if rows and rows[0].state == "completed":
                break
            time.sleep(0.3)
        first = ledger.list_runs(limit=1)[0]
        assert first.state == "completed", first.state
        card = page.locator(f".st-key-card_{first.run_id}").first
        # .first: while a fragment tick redraws, the old copy of an element may linger for a moment
        promote = card.locator(f".st-key-card_promote_{first.run_id} button").first
        expect(promote).to_have_text(re.compile(r"Promote · Pro 1080p · 5 s · ≈ \$0\.31"), timeout=30_000)
        expect(card.locator(f".st-key-card_extend_{first.run_id} button").first).to_have_text(
            re.compile(r"Extend to 10 s · ≈ \$0\.37"))
        expect(card.locator(f".st-key-card_take_{first.run_id} button").first).to_have_text(
            re.compile(r"Another take · ≈ \$0\.18"))
        expect(card).to_contain_text("Done")
        card.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        page.screenshot(path=str(screenshot(page, "words-card-1280x800")))  # the viewport, card in view

        # a run queued at the gateway (its next look an hour away, so it stays queued while we read)
        queued = Ledger.new_id()
        ledger.create_run(queued, VideoRequest(prompt="A queued lighthouse, e2e words"), 0.184)
        assert ledger.claim_for_submit(queued)
        ledger.mark_submitted(queued, Task(id="task_e2e_queued_01", status="queued", progress=0),
                              time.time() + 3600)
        qcard = page.locator(f".st-key-card_{queued}").first
        expect(qcard).to_contain_text(
            re.compile(r"usually ~\d+ s \(median of 1 finished std 5 s run\) · waiting \d+ s"),
            timeout=15_000)
        text = qcard.inner_text()
        assert "0%" not in text and "Elapsed" not in text, text
        bar = qcard.locator(".kp-wait[role='progressbar']").first
        expect(bar).to_be_visible()
        # it moves: the inner stripe's position changes between two looks
        stripe = bar.locator("div").first
        x0 = stripe.bounding_box()["x"]
        page.wait_for_timeout(300)
        assert stripe.bounding_box()["x"] != x0, "the waiting bar does not move"
        qcard.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        page.screenshot(path=str(screenshot(page, "words-queued-1280x800")))
        _to_top(page)
        page.screenshot(path=str(screenshot(page, "words-compose-1280x800")))
        page.goto(f"{app_server.url}/history")
        wait_for_app(page)
        expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible(timeout=20_000)
        page.wait_for_timeout(800)
        screenshot(page, "words-history-1280x800")

        phone = browser.new_context(viewport=PHONE)
        try:
            pp = phone.new_page()
            open_app(pp, app_server.url)
            expect(pp.locator(f".st-key-card_{queued}").first).to_contain_text("usually ~", timeout=15_000)
            pp.locator(f".st-key-card_{queued}").first.scroll_into_view_if_needed()
            pp.wait_for_timeout(300)
            pp.screenshot(path=str(screenshot(pp, "words-queued-390x844")))
            pp.locator(f".st-key-card_{first.run_id}").first.scroll_into_view_if_needed()
            pp.wait_for_timeout(300)
            pp.screenshot(path=str(screenshot(pp, "words-card-390x844")))
            pp.locator(".st-key-compose_generate button").first.scroll_into_view_if_needed()
            pp.wait_for_timeout(300)
            pp.screenshot(path=str(screenshot(pp, "words-generate-390x844")))
            pp.goto(f"{app_server.url}/history")
            wait_for_app(pp)
            pp.wait_for_timeout(800)
            screenshot(pp, "words-history-390x844")
        finally:
            phone.close()
    finally:
        ledger.close()
