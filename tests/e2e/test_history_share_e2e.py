"""History and the share view in headless Debian Chromium against a real `streamlit run` and gateway process.

Make a run through Compose, find it in History by filtering, export it, open its share link in a fresh
browser context (no cookies) and see the video load from our origin, press "Re-run this config" and find
every setting back on Compose; recover a task made with plain HTTP by its id; and open a share link as the
very first request a freshly started server sees.
"""
from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from lib.config import LOCAL_API_KEY
from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from tests.fixtures.servers import DESKTOP, PHONE, open_app, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PROMPT = "A lighthouse beam sweeping over a stormy sea, e2e history"
NEGATIVE = "people, text"
ROW_HEIGHT = 46  # lib/ui/history_view.ROW_HEIGHT
HEADER = 35


def _to_top(page: Any) -> None:
    """Streamlit scrolls its own main container: scroll it back up before a full-page screenshot."""
    size = page.viewport_size or DESKTOP
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(400)


def _radio(page: Any, label: str, option: str) -> Any:
    return page.locator("[data-testid='stRadio']").filter(has_text=label).get_by_text(option, exact=True)


def _wait_rows(db: Path, pred: Any, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = read_ledger_rows(db) if db.exists() else []
        if pred(rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"ledger never reached the expected state: {rows}")


def _make_run_in_compose(page: Any, url: str, db: Path) -> dict:
    open_app(page, url)
    page.locator(".st-key-compose_prompt textarea").fill(PROMPT)
    page.get_by_label("Negative prompt").fill(NEGATIVE)
    _radio(page, "Mode", "pro (1080p)").click()
    _radio(page, "Aspect ratio", "9:16").click()
    page.locator("[data-testid='stCheckbox']").filter(has_text="Watermark").locator("label").click()
    wait_for_app(page)
    page.locator(".st-key-compose_generate button").click()
    rows = _wait_rows(db, lambda rs: rs and rs[0]["video_path"])
    return rows[0]


def _select_first_row(page: Any) -> None:
    grid = page.locator(".st-key-hist_table, [data-testid='stDataFrame']").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box, "the history table is not on the page"
    page.mouse.click(box["x"] + 16, box["y"] + HEADER + ROW_HEIGHT / 2)


def test_run_history_filter_share_and_rerun(app_server: Any, browser: Any, page: Any) -> None:
    run = _make_run_in_compose(page, app_server.url, app_server.db_path)
    run_id = run["run_id"]

    # History: find it by filtering (another run exists that must be filtered out)
    other = Ledger(f"sqlite:///{app_server.db_path}")
    bulk_insert(other, [run_row(Ledger.new_id(), VideoRequest(prompt="an unrelated sunflower field"), 0.18,
                                now=time.time() - 60, state="failed")])
    other.close()
    open_app(page, f"{app_server.url}/history")
    expect(page.get_by_text("Runs 1–2 of 2")).to_be_visible()
    search = page.get_by_role("textbox", name="Search runs")
    search.fill("lighthouse beam")
    search.press("Enter")
    expect(page.get_by_text("1 run", exact=True)).to_be_visible(timeout=15_000)
    wait_for_app(page)

    # Export CSV: exactly the filtered run, no key
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(dl.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["run_id"] for r in rows] == [run_id]
    assert rows[0]["prompt"] == PROMPT and rows[0]["mode"] == "pro" and rows[0]["aspect_ratio"] == "9:16"
    assert LOCAL_API_KEY not in text and "Bearer" not in text

    # select the row: the detail panel with its player
    _select_first_row(page)
    detail = page.locator(".st-key-hist_detail")
    expect(detail).to_be_visible(timeout=15_000)
    expect(detail.locator("[data-testid='stVideo']")).to_have_attribute(
        "src", re.compile(re.escape(app_server.url) + r"/archive/videos/.+\.mp4$"))
    wait_for_app(page)
    _to_top(page)
    screenshot(page, "history-1280x800")
    detail.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    screenshot(page, "history-1280x800-detail")

    # the share link in a fresh context: no cookies, no session
    share = f"{app_server.url}/run?id={run_id}"
    fresh = browser.new_context(viewport=DESKTOP)
    try:
        assert fresh.cookies() == []
        sp = fresh.new_page()
        open_app(sp, share)
        expect(sp.get_by_role("heading", name="Shared run")).to_be_visible()
        expect(sp.locator(".st-key-share_prompt code")).to_have_text(PROMPT)
        video = sp.locator(".st-key-share_run [data-testid='stVideo']").first
        same_origin = re.compile(re.escape(app_server.url) + r"/archive/videos/.+\.mp4$")
        expect(video).to_have_attribute("src", same_origin)
        src = video.get_attribute("src")
        statuses = sp.evaluate(
            """async (u) => {
                const part = await fetch(u, {headers: {Range: 'bytes=0-1023'}});
                const full = await fetch(u, {method: 'HEAD'});
                return [part.status, (await part.arrayBuffer()).byteLength, full.status,
                        full.headers.get('content-type')];
            }""",
            src,
        )
        assert statuses[0] == 206 and statuses[1] == 1024, statuses
        assert statuses[2] in (200, 206) and statuses[3] == "video/mp4", statuses
        assert "unrelated sunflower" not in sp.content()  # never another run
        assert LOCAL_API_KEY not in sp.content()
        _to_top(sp)
        screenshot(sp, "share-1280x800")
        sp.set_viewport_size(PHONE)
        sp.wait_for_timeout(500)
        _to_top(sp)
        screenshot(sp, "share-390x844")
        sp.set_viewport_size(DESKTOP)

        # Re-run this config: Compose with every setting filled in
        sp.get_by_role("button", name="Re-run this config").click()
        wait_for_app(sp)
        prompt_box = sp.locator(".st-key-compose_prompt textarea")
        expect(prompt_box).to_have_value(PROMPT, timeout=15_000)
        expect(sp.get_by_label("Negative prompt")).to_have_value(NEGATIVE)
        expect(_radio(sp, "Mode", "pro (1080p)").locator("xpath=ancestor::label//input")).to_be_checked()
        expect(_radio(sp, "Duration", "5 s").locator("xpath=ancestor::label//input")).to_be_checked()
        expect(_radio(sp, "Aspect ratio", "9:16").locator("xpath=ancestor::label//input")).to_be_checked()
        watermark = sp.locator("[data-testid='stCheckbox']").filter(has_text="Watermark").locator("input")
        expect(watermark).to_be_checked()
        assert len(read_ledger_rows(app_server.db_path)) == 2  # re-run fills the form; it sends nothing
    finally:
        fresh.close()

    # History on a phone
    phone = browser.new_context(viewport=PHONE)
    try:
        pp = phone.new_page()
        open_app(pp, f"{app_server.url}/history")
        _to_top(pp)
        screenshot(pp, "history-390x844")
    finally:
        phone.close()


def test_recover_by_task_id_in_the_browser(app_server: Any, page: Any) -> None:
    gw = app_server.gateway.url
    resp = requests.post(f"{gw}/v1/videos/generations",
                         json={"model": "kling-v3", "prompt": "made with curl"},
                         headers={"Authorization": f"Bearer {LOCAL_API_KEY}"}, timeout=10)
    resp.raise_for_status()
    task_id = resp.json()["id"]
    open_app(page, f"{app_server.url}/history")
    page.get_by_role("tab", name="Recover by task id").click()
    page.get_by_role("textbox", name="Task id").fill(task_id)
    page.get_by_role("button", name="Recover").click()
    expect(page.get_by_text("is in the history")).to_be_visible(timeout=15_000)
    rows = _wait_rows(app_server.db_path,
                      lambda rs: rs and rs[0]["state"] == "completed" and rs[0]["video_path"])
    assert [r["task_id"] for r in rows] == [task_id] and rows[0]["source"] == "recovered"
    submits = app_server.gateway.requests("submit")
    assert len(submits) == 1  # ours, by curl; recovering never submits again
    page.get_by_role("tab", name="Runs").click()
    expect(page.get_by_text("1 run", exact=True)).to_be_visible(timeout=15_000)


def test_share_link_is_the_first_request_to_a_fresh_server(app_server: Any, browser: Any) -> None:
    """No session has run app.py yet: the deep link must still get our frame and the run."""
    led = Ledger(f"sqlite:///{app_server.db_path}")
    rid = Ledger.new_id()
    evil = "<img src=x onerror=alert(1)> **not bold** [link](https://evil.test)"
    bulk_insert(led, [run_row(rid, VideoRequest(prompt=evil, mode="std", duration=5), 0.18,
                              now=time.time() - 30, state="failed")])
    led.close()
    ctx = browser.new_context(viewport=PHONE)
    try:
        pg = ctx.new_page()
        alerts: list[str] = []
        pg.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
        open_app(pg, f"{app_server.url}/run?id={rid}")
        expect(pg.get_by_role("heading", name="Shared run")).to_be_visible()
        expect(pg.locator(".st-key-share_prompt code")).to_have_text(evil)
        assert pg.locator("img[src='x']").count() == 0 and alerts == []
        assert pg.locator("a[href='https://evil.test']").count() == 0
        nav = pg.locator("[data-testid='stSidebarNav']")
        assert nav.count() == 0  # Streamlit's legacy file-name nav never appears
        open_app(pg, f"{app_server.url}/run?id=doesnotexist0000000000")
        expect(pg.get_by_text("This link does not match any run.")).to_be_visible()
    finally:
        ctx.close()


def test_group_share_view_plays_every_cell(app_server: Any, browser: Any, page: Any) -> None:
    """A comparison written straight into the ledger as drafts: the app's worker sends and archives them."""
    open_app(page, app_server.url)  # starts the app's services (and its worker)
    led = Ledger(f"sqlite:///{app_server.db_path}")
    gid = Ledger.new_id()
    base = VideoRequest(prompt="A paper boat on a rainy street, e2e group", duration=5, aspect_ratio="16:9")
    for mode in ("std", "pro"):
        led.create_run(Ledger.new_id(), base.replace(mode=mode), 0.2, group_id=gid, label=mode,
                       source="compare")
    led.close()
    _wait_rows(app_server.db_path, lambda rs: len(rs) == 2 and all(r["video_path"] for r in rs), timeout=180)

    # the stats tab now has two finished runs to show
    open_app(page, f"{app_server.url}/history")
    page.get_by_role("tab", name="Spend and stats").click()
    expect(page.get_by_text("Success rate")).to_be_visible(timeout=15_000)
    wait_for_app(page)
    _to_top(page)
    screenshot(page, "history-1280x800-stats")

    fresh = browser.new_context(viewport=DESKTOP)
    try:
        gp = fresh.new_page()
        open_app(gp, f"{app_server.url}/run?group={gid}")
        expect(gp.get_by_role("heading", name="Shared comparison")).to_be_visible()
        videos = gp.locator(".st-key-share_group video[data-sp-video=cell]")
        expect(videos).to_have_count(2, timeout=15_000)
        for i in range(2):
            src = videos.nth(i).evaluate("v => v.src")  # resolved: the page's own origin
            assert src and src.startswith(app_server.url + "/archive/videos/"), src
            status = gp.evaluate(
                "async (u) => (await fetch(u, {headers: {Range: 'bytes=0-99'}})).status", src)
            assert status == 206
        _to_top(gp)
        screenshot(gp, "share-group-1280x800")
        gp.set_viewport_size(PHONE)
        gp.wait_for_timeout(500)
        _to_top(gp)
        screenshot(gp, "share-group-390x844")
        gp.set_viewport_size(DESKTOP)
        gp.get_by_role("button", name="Re-run this grid").click()
        # What the user gets, not the URL on the way: Compare fills its form from the query and then
        # clears it, and under load the browser may show the page path only after the query is gone.
        gp.wait_for_url(re.compile(r"/compare"), timeout=15_000)
        expect(gp.get_by_text("Settings filled in from the shared grid")).to_be_visible(timeout=15_000)
        expect(gp.locator(".st-key-cmp_prompt_0 textarea")).to_have_value(base.prompt)
    finally:
        fresh.close()
