"""Compose in headless Debian Chromium: type, generate, watch the archived video load from our origin."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import PHONE, open_app, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PROMPT_BOX = ".st-key-compose_prompt textarea"  # the Prompt box (its container holds the negative one too)


def _to_top(page):
    """Streamlit scrolls its own main container, so a full-page shot shows what is scrolled into view."""
    size = page.viewport_size or {"width": 390, "height": 800}
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(400)


def _prompt(page):
    return page.locator(PROMPT_BOX).first


def test_generate_plays_a_same_origin_video(app_server, page):
    open_app(page, app_server.url)
    screenshot(page, "compose-1280x800-empty")
    _prompt(page).fill("A paper lantern drifting over a dark lake, e2e")
    page.locator(".st-key-compose_generate button").click()
    video = page.locator("[data-testid='stVideo']").first
    # the only source a card plays is the archived same-origin copy ("Saving…" before it)
    archived = re.compile(re.escape(app_server.url) + r"/archive/videos/.+\.mp4$")
    expect(video).to_have_attribute("src", archived, timeout=90_000)
    src = video.get_attribute("src")
    assert src and src.startswith(app_server.url + "/archive/videos/") and src.endswith(".mp4"), src
    statuses = page.evaluate(
        """async (u) => {
            const full = await fetch(u);
            const part = await fetch(u, {headers: {Range: 'bytes=0-1023'}});
            const head = new Uint8Array(await part.arrayBuffer());
            return [full.status, full.headers.get('content-type'), part.status, head.length];
        }""",
        src,
    )
    assert statuses[0] in (200, 206) and statuses[1] == "video/mp4", statuses
    assert statuses[2] == 206 and statuses[3] == 1024, statuses
    rows = read_ledger_rows(app_server.db_path)
    assert len(rows) == 1 and rows[0]["state"] == "completed"
    wait_for_app(page)
    _to_top(page)
    screenshot(page, "compose-1280x800-done")


def test_ctrl_enter_in_the_prompt_generates_once(app_server, page):
    open_app(page, app_server.url)
    box = _prompt(page)
    box.click()
    box.type("Ctrl+Enter from the prompt")
    page.keyboard.press("Control+Enter")
    # a card in any phase: the waiting bar (0 %), the progress bar, or the video
    page.locator("[data-testid='stProgress'], .kp-wait, [data-testid='stVideo']").first.wait_for(timeout=30e3)
    rows = read_ledger_rows(app_server.db_path)
    assert [r["params"] for r in rows] and "Ctrl+Enter from the prompt" in rows[0]["params"]
    assert len(rows) == 1


def test_double_click_submits_once(app_server, page):
    open_app(page, app_server.url)
    _prompt(page).fill("double click")
    page.locator(".st-key-compose_generate button").dblclick()
    page.wait_for_timeout(1500)
    wait_for_app(page)
    assert len(read_ledger_rows(app_server.db_path)) == 1


def test_phone_layout_screenshot(app_server, browser):
    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    try:
        open_app(page, app_server.url)
        _prompt(page).fill("A phone-sized check")
        page.locator(".st-key-compose_generate button").click()
        page.locator("[data-testid='stVideo']").first.wait_for(state="attached", timeout=90_000)
        wait_for_app(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"page scrolls sideways on a phone: {width}px"
        _to_top(page)
        screenshot(page, "compose-390x844")
    finally:
        ctx.close()
