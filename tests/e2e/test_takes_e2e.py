"""Takes in Chromium: a Compare grid of 2 takes × std/pro pressed again and again at human gaps sends
exactly 4 runs to the gateway (its request log is what would be billed), every cell shows its takes side
by side and the grid's one bar plays all of them in sync; Compose's 3 takes make 3 runs shown as one
strip with its own synced bar. Screenshots at 1280x800 and 390x844 for a person to look at."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_compare_e2e import SPREAD_JS, _spread_samples, _to_top
from tests.e2e.test_presses_e2e import (
    fill_prompt,
    gaps_of,
    note_text,
    paced_clicks,
    rows,
    settle_runs,
    submits,
    wait_until,
)
from tests.fixtures.servers import (
    DESKTOP,
    PHONE,
    AppServer,
    GatewayProcess,
    open_app,
    screenshot,
    wait_for_app,
)

pytestmark = [pytest.mark.e2e, pytest.mark.serial]  # click cadence and synced playback
LABEL_3 = re.compile(r"Generate 3 takes · Std 720p · 5 s · ≈ \$0\.55")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("takes")
    gateway = GatewayProcess(root / "gateway", speed=20).start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture
def tab(server: AppServer, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    yield page
    ctx.close()


def _plays_in_sync(page: Any, n: int) -> None:
    """The first bar on the page plays its n videos together (within 0.1 s around the loop), then pauses."""
    page.locator("[data-sync-player] [data-sp=play]").first.click()
    page.wait_for_timeout(1200)
    samples = _spread_samples(page, 5)
    assert all(s["count"] == n and not any(s["paused"]) for s in samples), samples[-1]
    assert max(s["spread"] for s in samples) <= 0.1, [round(s["spread"], 3) for s in samples]
    assert samples[-1]["times"][0] > 0.3
    page.locator("[data-sync-player] [data-sp=play]").first.click()
    page.wait_for_timeout(300)
    assert all(page.evaluate(SPREAD_JS)["paused"])


def _phone_shot(page: Any, name: str, show: str | None = None) -> None:
    """The same page at 390x844, at its top or with `show` (a selector) scrolled into view."""
    page.set_viewport_size(PHONE)
    page.reload()
    wait_for_app(page)
    page.wait_for_timeout(1500)
    _to_top(page)
    if show:
        page.locator(show).first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
    screenshot(page, name)
    page.set_viewport_size(DESKTOP)


@pytest.mark.parametrize("gap_ms", [150, 600])
def test_a_grid_of_two_takes_pressed_repeatedly_sends_four_runs_and_plays_in_sync(
        server: AppServer, tab: Any, gap_ms: int) -> None:
    open_app(tab, f"{server.url}/compare")
    box = tab.locator(".st-key-cmp_prompt_0 textarea")
    box.fill(f"takes grid at {gap_ms} ms: a paper lantern drifting over a night lake")
    box.press("Tab")
    wait_for_app(tab)
    tab.locator(".st-key-cmp_takes button", has_text="2").click()
    wait_for_app(tab)
    expect(tab.get_by_role("button", name=re.compile(r"Submit grid · 4 runs · ≈ \$0\.99"))).to_be_visible()
    mark, before = len(server.gateway.requests()), len(rows(server))
    hits = paced_clicks(tab, ".st-key-cmp_submit_grid button", 4, gap_ms)
    landed = tab.evaluate("() => window.__landed.slice()")
    print(f"gap {gap_ms} ms: {len(hits)} of 4 clicks landed on Submit grid; all landed on {landed}")
    assert hits, "the first click did not land on Submit grid"
    new = settle_runs(server, before, quiet=1.5)
    assert len(new) == 4 and len({r["group_id"] for r in new}) == 1, new
    assert sorted(r["label"] for r in new) == ["pro", "pro", "std", "std"]
    wait_until("4 submits in the gateway log", lambda: len(submits(server.gateway, mark)) >= 4)
    time.sleep(1.0)
    assert len(submits(server.gateway, mark)) == 4 and len(rows(server)) - before == 4
    if gap_ms != 150:
        return
    wait_until("the takes archived", lambda: all(r["video_path"] for r in rows(server)[before:]), limit=90)
    player = tab.locator('[data-sync-player][data-count="4"]')
    expect(player).to_be_visible(timeout=60_000)
    expect(player).to_have_attribute("data-ready", "loaded", timeout=30_000)
    for i in (0, 1):  # each cell: its two takes side by side, both in the grid's sync group
        videos = tab.locator(f".st-key-cmp_cell_{i} video[data-sp-video=cell]")
        expect(videos).to_have_count(2, timeout=30_000)
        expect(tab.locator(f".st-key-cmp_cell_{i}").get_by_text("Take 2 of 2")).to_be_visible()
    a = tab.locator(".st-key-cmp_cell_0 video").nth(0).bounding_box()
    b = tab.locator(".st-key-cmp_cell_0 video").nth(1).bounding_box()
    assert a and b and abs(a["y"] - b["y"]) <= 2 and a["x"] + a["width"] <= b["x"] + 1, (a, b)  # a strip
    _plays_in_sync(tab, 4)
    _to_top(tab)
    screenshot(tab, "takes-compare-1280x800")
    _phone_shot(tab, "takes-compare-390x844")


def test_three_takes_on_compose_are_three_runs_in_one_synced_strip(server: AppServer, tab: Any) -> None:
    """4 clicks 600 ms apart on "Generate 3 takes": 3 runs, never 6. The page's clock paces the clicks, but a
    loaded machine can stretch a gap past the 3 s window (measured: 3208 ms for a 600 ms gap at load 38),
    which is then rightly a second press: such a try is not evidence of the cadence and is made again with
    other settings (at most 3 tries; all stretched fails)."""
    open_app(tab, server.url)
    tab.locator(".st-key-compose_takes button", has_text="3").click()
    wait_for_app(tab)
    generate = ".st-key-compose_generate button"
    tries = []
    for attempt in range(3):
        fill_prompt(tab, f"three takes, try {attempt + 1}: a hummingbird at a red feeder, slow motion")
        expect(tab.locator(generate)).to_have_text(LABEL_3)
        mark, before = len(server.gateway.requests()), len(rows(server))
        hits = paced_clicks(tab, generate, 4, 600)  # Generate stays in place: every click is a press
        new = settle_runs(server, before, quiet=1.5)
        note = note_text(tab, "compose_press_note")
        stamps = [round(r["created_at"] % 100, 2) for r in new]
        print(f"Generate at 600 ms, try {attempt + 1}: {len(hits)} of 4 clicks landed, {gaps_of(hits)} ms "
              f"apart; the page says {note!r}; rows written at …{stamps} s")
        tries.append(gaps_of(hits))
        assert len(hits) >= 2, "the clicks did not land on Generate"
        if max(gaps_of(hits)) <= 2000:
            break
        time.sleep(3.5)  # past the window: the next try is a press of its own
    else:
        pytest.fail(f"the browser never kept a human cadence (gaps {tries} ms): nothing was shown either way")
    assert len(new) == 3 and len({r["group_id"] for r in new}) == 1, (gaps_of(hits), note, new)
    wait_until("3 submits", lambda: len(submits(server.gateway, mark)) >= 3)
    time.sleep(1.0)
    assert len(submits(server.gateway, mark)) == 3
    gid = new[0]["group_id"]
    wait_until("the takes archived", lambda: all(r["video_path"] for r in rows(server)[before:]), limit=90)
    strip = tab.locator(f".st-key-strip_{gid[:10]}")
    player = strip.locator(f'[data-sync-player="takes-{gid[:10]}"][data-count="3"]')
    expect(player).to_have_attribute("data-ready", "loaded", timeout=60_000)
    expect(strip.locator("video[data-sp-video=cell]")).to_have_count(3)
    for n in (1, 2, 3):
        expect(strip.get_by_text(f"Take {n} of 3")).to_be_visible()
    boxes = [strip.locator("video[data-sp-video=cell]").nth(i).bounding_box() for i in range(3)]
    assert all(b and abs(b["y"] - boxes[0]["y"]) <= 2 for b in boxes), boxes   # side by side at 1280
    _plays_in_sync(tab, 3)
    _to_top(tab)
    screenshot(tab, "takes-compose-1280x800")
    _phone_shot(tab, "takes-compose-390x844", show=f".st-key-strip_{gid[:10]}")
