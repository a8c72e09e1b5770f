"""Compare in headless Debian Chromium: a 2 × 2 grid completes, plays in sync (checked in the page's own
JavaScript after play and after a seek), the wipe view shows two videos, and the grid's share link opens
in a fresh browser context."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import DESKTOP, PHONE, ROOT, open_app, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PLAYER = "[data-sync-player]"
# Every playing video's time, and the spread between them measured around the loop (on a 5 s loop,
# 4.99 s and 0.01 s are 0.02 s apart: the frames on screen are that close). Read in one JS task, so all
# times are from the same instant. Wipe-view videos count only while the wipe view is open.
SPREAD_JS = """() => {
    const root = document.querySelector('[data-sync-player]');
    const vids = Array.from(root.querySelectorAll('video[data-sp-video]')).filter(v => v.getAttribute('src'));
    const times = vids.map(v => v.currentTime);
    const D = Math.max(...vids.map(v => v.duration || 0));
    const off = times.map(t => { let d = t - times[0];
        if (d > D / 2) d -= D; else if (d < -D / 2) d += D; return d; });
    return {times, spread: Math.max(...off) - Math.min(...off), count: vids.length,
            paused: vids.map(v => v.paused), ready: vids.map(v => v.readyState), duration: D};
}"""


def _to_top(page):
    """Streamlit scrolls its own main container; scroll it back so the screenshot starts at the top."""
    size = page.viewport_size or DESKTOP
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(400)


def _spread_samples(page, n: int = 8, gap_ms: int = 120) -> list[dict]:
    out = []
    for _ in range(n):
        out.append(page.evaluate(SPREAD_JS))
        page.wait_for_timeout(gap_ms)
    return out


def test_two_by_two_grid_plays_in_sync_and_shares(app_server, page, browser):
    open_app(page, f"{app_server.url}/compare")
    expect(page.locator(".st-key-cmp_preview_1")).to_be_visible()
    screenshot(page, "compare-1280x800-default")

    # two prompt variants × std/pro × 5 s = a 2 × 2 grid
    page.locator(".st-key-cmp_n button", has_text="2").click()
    wait_for_app(page)
    for i, text in enumerate(("A red kite over green hills, e2e grid one",
                              "A blue kite over a grey sea, e2e grid two")):
        box = page.locator(f".st-key-cmp_prompt_{i} textarea")
        box.fill(text)
        box.press("Tab")  # a text area commits its value on blur
        wait_for_app(page)
    expect(page.locator(".st-key-cmp_preview_3")).to_be_visible()
    expect(page.get_by_text("for 4 runs")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"Submit grid · 4 runs · ≈ \$")).click()

    page.wait_for_url(re.compile(r"/compare\?group="), timeout=30_000)
    group_id = re.search(r"group=([^&]+)", page.url).group(1)
    player = page.locator(f'{PLAYER}[data-count="4"]')
    expect(player).to_be_visible(timeout=120_000)
    expect(player).to_have_attribute("data-ready", "loaded", timeout=30_000)
    rows = read_ledger_rows(app_server.db_path)
    assert len(rows) == 4 and {r["group_id"] for r in rows} == {group_id}
    assert all(r["state"] == "completed" for r in rows)
    videos = player.locator("video[data-sp-video=cell]")
    assert videos.count() == 4
    srcs = {v.get_attribute("src") for v in videos.all()}
    assert all(s.startswith("/archive/videos/") and s.endswith(".mp4") for s in srcs), srcs

    # one control plays everything; they stay within 0.1 s of each other
    player.locator("[data-sp=play]").click()
    page.wait_for_timeout(1200)
    samples = _spread_samples(page)
    assert all(s["count"] == 4 and not any(s["paused"]) for s in samples), samples[-1]
    assert max(s["spread"] for s in samples) <= 0.1, [round(s["spread"], 3) for s in samples]
    assert samples[-1]["times"][0] > 0.5

    # seek with the shared slider to 60 %: every video jumps there, still in sync
    duration = samples[-1]["duration"]
    player.locator("[data-sp=seek]").fill("600")
    page.wait_for_timeout(400)
    after = _spread_samples(page)
    assert max(s["spread"] for s in after) <= 0.1, [round(s["spread"], 3) for s in after]
    t = after[0]["times"][0]
    assert 0.6 * duration - 0.2 <= t <= 0.6 * duration + 1.5, (t, duration)

    # pause stops them all at one time
    player.locator("[data-sp=play]").click()
    page.wait_for_timeout(300)
    paused = page.evaluate(SPREAD_JS)
    assert all(paused["paused"]) and paused["spread"] <= 0.1, paused

    # the wipe view: two different cells, one revealed over the other by the slider, in sync with the rest
    wipe = player.locator("[data-sp=wipe]")
    wipe.locator("summary").click()
    wipe_videos = wipe.locator("video")
    assert wipe_videos.count() == 2
    page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-sp=wipe] video'))
        .every(v => v.readyState >= 2 && v.videoWidth > 0)""", timeout=15_000)
    ids = [v.get_attribute("data-run-id") for v in wipe_videos.all()]
    assert len(set(ids)) == 2 and set(ids) <= {r["run_id"] for r in rows}
    wipe.locator("[data-sp=wipe-pos]").fill("30")
    expect(wipe.locator("video[data-wipe=b]")).to_have_attribute(
        "style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 30%\)"))
    third = next(r["run_id"] for r in rows if r["run_id"] not in ids)
    wipe.locator("[data-sp=wipe-b]").select_option(third)
    expect(wipe.locator("video[data-wipe=b]")).to_have_attribute("data-run-id", third)
    page.wait_for_function("() => document.querySelector('video[data-wipe=b]').readyState >= 2")
    player.locator("[data-sp=play]").click()
    page.wait_for_timeout(1200)
    swapped = _spread_samples(page, 6)
    assert all(s["count"] == 6 for s in swapped), swapped[-1]
    assert max(s["spread"] for s in swapped) <= 0.1, [round(s["spread"], 3) for s in swapped]
    wipe.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ROOT / "screenshots" / "compare-1280x800-wipe.png"))

    player.locator(".sp-grid").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    state = page.evaluate(SPREAD_JS)
    assert not any(state["paused"]) and min(state["ready"]) >= 2, state
    page.screenshot(path=str(ROOT / "screenshots" / "compare-1280x800-player.png"))
    wait_for_app(page)
    _to_top(page)
    screenshot(page, "compare-1280x800-grid")

    # the grid's share link, read from the page, opens in a fresh context (no cookies, no session)
    page.get_by_role("button", name=re.compile("Share this grid")).click()
    code = page.locator("[data-testid='stCode']", has_text="/run?group=").first
    expect(code).to_be_visible()
    link = code.inner_text().strip()
    assert link.endswith(f"/run?group={group_id}"), link
    fresh = browser.new_context(viewport=DESKTOP)
    try:
        other = fresh.new_page()
        open_app(other, link)
        expect(other.get_by_text("Shared comparison")).to_be_visible(timeout=30_000)
        expect(other.locator("video")).to_have_count(4, timeout=30_000)
        path = other.locator("video").first.evaluate("v => new URL(v.src).pathname")
        assert path.startswith("/archive/videos/"), path
    finally:
        fresh.close()

    # phone: cells stack, the player still fits
    phone = browser.new_context(viewport=PHONE)
    try:
        small = phone.new_page()
        open_app(small, f"{app_server.url}/compare?group={group_id}")
        expect(small.locator(f'{PLAYER}[data-count="4"]')).to_be_visible(timeout=30_000)
        expect(small.locator(PLAYER)).to_have_attribute("data-ready", "loaded", timeout=30_000)
        width = small.evaluate("() => document.querySelector('[data-sync-player]')"
                               ".getBoundingClientRect().width")
        assert width <= PHONE["width"], width
        _to_top(small)
        screenshot(small, "compare-390x844-grid")
        small.locator(PLAYER).scroll_into_view_if_needed()
        small.wait_for_timeout(400)
        small.screenshot(path=str(ROOT / "screenshots" / "compare-390x844-player.png"))
    finally:
        phone.close()
