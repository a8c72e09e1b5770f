"""Compare in headless Debian Chromium: a 2 × 2 grid completes, each cell plays its own video in its place,
one bar (which stays in view while the grid scrolls) plays and seeks them all in sync (checked in the page's
own JavaScript), the wipe view plays with its own control, a phone shows std and pro side by side, and the
grid's share link opens in a fresh browser context with the same structure."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import DESKTOP, PHONE, ROOT, open_app, read_ledger_rows, screenshot, wait_for_app

# timing checks (synced players within 0.1 s): run alone, last (tests/conftest.py)
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

PLAYER = "[data-sync-player]"
# Every playing video's time, and the spread between them measured around the loop (on a 5 s loop,
# 4.99 s and 0.01 s are 0.02 s apart: the frames on screen are that close). Read in one JS task, so all
# times are from the same instant. `sel` picks the videos: the grid's cells (default) or the wipe view's.
SPREAD_JS = """(sel) => {
    const key = document.querySelector('[data-sync-player]').dataset.syncPlayer;
    const vids = Array.from(document.querySelectorAll(sel || `video[data-sp-group="${key}"]`))
        .filter(v => v.getAttribute('src'));
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


WIPE_VIDEOS = "[data-sp-wipe-player] video[data-sp-video=wipe]"


def _spread_samples(page, n: int = 8, gap_ms: int = 120, sel: str | None = None) -> list[dict]:
    out = []
    for _ in range(n):
        out.append(page.evaluate(SPREAD_JS, sel))
        page.wait_for_timeout(gap_ms)
    return out


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box


def _cells_in_place(page, cells: list[str]) -> list[str]:
    """Each cell container holds exactly one video of the grid; their sources are the archive's."""
    srcs = []
    for cell in cells:
        video = page.locator(f"{cell} video[data-sp-video=cell]")
        expect(video).to_have_count(1, timeout=30_000)
        srcs.append(video.evaluate("v => new URL(v.src).pathname"))
    assert len(set(srcs)) == len(cells), srcs
    assert all(s.startswith("/archive/videos/") and s.endswith(".mp4") for s in srcs), srcs
    return srcs


def _side_by_side(page, left: str, right: str, width: int) -> None:
    """std (left) and pro (right) of one row: same top, left before right, both inside the screen. Both
    boxes are read in one frame, so the page settling above the grid between two reads cannot part them."""
    a, b = page.evaluate("""sels => sels.map(s => {
        const r = document.querySelector(s).getBoundingClientRect();
        return {x: r.x, y: r.y, width: r.width, height: r.height};
    })""", [left, right])
    assert abs(a["y"] - b["y"]) <= 2, (a, b)
    assert a["x"] + a["width"] <= b["x"] + 1 and b["x"] + b["width"] <= width + 1, (a, b)
    assert "std" in page.locator(left).first.inner_text() and "pro" in page.locator(right).first.inner_text()


def _plays_together(page, bar: str, n: int) -> None:
    """The bar's one Play starts every cell; they advance together; the bar's Pause stops them all."""
    page.locator(f"{bar} [data-sp=play]").click()
    page.wait_for_timeout(1200)
    samples = _spread_samples(page, 5)
    assert all(s["count"] == n and not any(s["paused"]) for s in samples), samples[-1]
    assert max(s["spread"] for s in samples) <= 0.1, [round(s["spread"], 3) for s in samples]
    assert samples[-1]["times"][0] > 0.5
    page.locator(f"{bar} [data-sp=play]").click()
    page.wait_for_timeout(300)
    paused = page.evaluate(SPREAD_JS)
    assert all(paused["paused"]) and paused["spread"] <= 0.1, paused


def test_two_by_two_grid_plays_in_place_in_sync_and_shares(app_server, page, browser):
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
    # every cell holds its own video, in the cell (not in a section below), and the bar holds none
    cells = [f".st-key-cmp_cell_{i}" for i in range(4)]
    _cells_in_place(page, cells)
    assert player.locator("video").count() == 0

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

    # scroll the grid: the cells move up, the bar stays pinned at the top of the viewport (and still drives
    # them); before the scroll it sits above the cells it drives. From the top of the page: the seek above
    # may have scrolled it (the slider is brought into view to be moved)
    page.mouse.move(640, 500)
    page.mouse.wheel(0, -10_000)
    page.wait_for_timeout(500)
    top_before = _box(page, cells[0])["y"]
    assert _box(page, PLAYER)["y"] < top_before
    page.mouse.move(640, 500)
    page.mouse.wheel(0, 450)
    page.wait_for_timeout(500)
    assert _box(page, cells[0])["y"] < top_before - 300, (top_before, _box(page, cells[0]))
    bar = _box(page, PLAYER)
    assert bar["y"] >= 0 and bar["y"] + bar["height"] <= DESKTOP["height"], bar
    # pinned under the app's header, not left behind with the page (how far the rows move under it depends
    # on the browser's wheel step, so the test does not ask which row is still below it)
    assert bar["y"] < DESKTOP["height"] / 4, bar
    page.screenshot(path=str(ROOT / "screenshots" / "compare-1280x800-scrolled.png"))

    # pause stops them all at one time
    player.locator("[data-sp=play]").click()
    page.wait_for_timeout(300)
    paused = page.evaluate(SPREAD_JS)
    assert all(paused["paused"]) and paused["spread"] <= 0.1, paused

    # the wipe view: two different cells, one revealed over the other by the slider, played by its own control
    wipe = page.locator("[data-sp-wipe-player]")
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
    wipe.locator("[data-sp=play]").click()
    expect(wipe.locator("[data-sp=play]")).to_have_text("❚❚ Pause")  # its own control, for its two videos
    page.wait_for_timeout(1200)
    swapped = _spread_samples(page, 6, sel=WIPE_VIDEOS)
    assert all(s["count"] == 2 and not any(s["paused"]) for s in swapped), swapped[-1]
    assert max(s["spread"] for s in swapped) <= 0.1, [round(s["spread"], 3) for s in swapped]
    assert swapped[-1]["times"][0] > 0.5
    assert all(page.evaluate(SPREAD_JS)["paused"])  # the grid's cells were not started by the wipe's Play
    wipe.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ROOT / "screenshots" / "compare-1280x800-wipe.png"))
    wipe.locator("[data-sp=play]").click()
    wait_for_app(page)
    _to_top(page)
    screenshot(page, "compare-1280x800-grid")

    # the grid's share link, read from the page, opens in a fresh context (no cookies, no session) with
    # the same structure: std | pro columns, a video in each cell, one bar, a wipe view
    page.get_by_role("button", name=re.compile("Share this grid")).click()
    code = page.locator("[data-testid='stCode']", has_text=f"/s/{group_id}").first
    expect(code).to_be_visible()
    link = code.inner_text().strip()
    assert link == f"{app_server.url}/s/{group_id}", link  # the short link: it opens the share view
    fresh = browser.new_context(viewport=DESKTOP)
    try:
        other = fresh.new_page()
        open_app(other, link)
        expect(other.get_by_text("Shared comparison")).to_be_visible(timeout=30_000)
        shared_bar = other.locator(f'{PLAYER}[data-count="4"]')
        expect(shared_bar).to_have_attribute("data-ready", "loaded", timeout=30_000)
        share_cells = [f".st-key-share_cell_{r['run_id']}" for r in rows]
        _cells_in_place(other, share_cells)
        assert other.locator("video[src]").count() == 4  # the wipe view holds no source while closed
        tops = sorted({round(_box(other, c)["y"]) for c in share_cells})
        assert len(tops) == 2, tops  # two rows of two: std | pro, not one column per duration
        for top in tops:
            row = sorted((c for c in share_cells if round(_box(other, c)["y"]) == top),
                         key=lambda c: _box(other, c)["x"])
            _side_by_side(other, row[0], row[1], DESKTOP["width"])
        _plays_together(other, PLAYER, 4)
        expect(other.locator("[data-sp-wipe-player] [data-sp=play]")).to_have_count(1)
        _to_top(other)
        screenshot(other, "share-grid-1280x800")
    finally:
        fresh.close()

    # phone: std and pro of one row side by side, the bar fits, the shared grid too
    phone = browser.new_context(viewport=PHONE)
    try:
        small = phone.new_page()
        open_app(small, f"{app_server.url}/compare?group={group_id}")
        expect(small.locator(f'{PLAYER}[data-count="4"]')).to_be_visible(timeout=30_000)
        expect(small.locator(PLAYER)).to_have_attribute("data-ready", "loaded", timeout=30_000)
        width = small.evaluate("() => document.querySelector('[data-sync-player]')"
                               ".getBoundingClientRect().width")
        assert width <= PHONE["width"], width
        _side_by_side(small, cells[0], cells[1], PHONE["width"])
        _side_by_side(small, cells[2], cells[3], PHONE["width"])
        _to_top(small)
        screenshot(small, "compare-390x844-grid")
        small.locator(cells[2]).scroll_into_view_if_needed()
        small.wait_for_timeout(400)
        bar = _box(small, PLAYER)
        assert bar["y"] >= 0 and bar["y"] + bar["height"] <= PHONE["height"], bar
        small.screenshot(path=str(ROOT / "screenshots" / "compare-390x844-player.png"))
        open_app(small, link)
        expect(small.locator(f'{PLAYER}[data-count="4"]')).to_have_attribute("data-ready", "loaded",
                                                                            timeout=30_000)
        share_cells = [f".st-key-share_cell_{r['run_id']}" for r in rows]
        tops = sorted({round(_box(small, c)["y"]) for c in share_cells})
        assert len(tops) == 2, tops
        _to_top(small)
        screenshot(small, "share-grid-390x844")
    finally:
        phone.close()
