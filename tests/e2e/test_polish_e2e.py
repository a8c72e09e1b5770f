"""Every control acts where the user is looking (issue 14, items 5, 6 and 9), driven in Chromium.

One gateway and one app server for the whole file. Each test does what a person does: types into the
prompt and reads the counter before leaving the box, uploads a frame and reads the paste box, measures
where Generate is before and after, presses Generate with the page scrolled, plays a video while another
run starts, and on a phone clicks a History row and copies the share link.
"""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from playwright.sync_api import expect

from lib.contract import IMAGE_FORMATS_TEXT, MAX_IMAGE_MB, MAX_PROMPT
from tests.fixtures.servers import (
    DESKTOP,
    PHONE,
    AppServer,
    GatewayProcess,
    open_app,
    read_ledger_rows,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

PROMPT_BOX = ".st-key-compose_prompt textarea"  # the Prompt box (its container holds the negative one too)
GENERATE = ".st-key-compose_generate button"
FIRST_BOX = ".st-key-compose_first_frame_box"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("polish")
    gateway = GatewayProcess(root / "gateway").start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=PHONE)
    yield ctx.new_page()
    ctx.close()


def _frame_png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (800, 450), (40, 120, 200)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


def _wait_rows(db: Path, pred: Any, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = read_ledger_rows(db) if db.exists() else []
        if pred(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"ledger never reached the expected state: {rows}")


def _generate(page: Any, server: AppServer, prompt: str) -> dict:
    """Type a prompt, press Generate, wait until the run is in the ledger; the new row."""
    before = len(read_ledger_rows(server.db_path)) if server.db_path.exists() else 0
    page.locator(PROMPT_BOX).first.fill(prompt)
    page.locator(GENERATE).click()
    return _wait_rows(server.db_path, lambda rows: len(rows) > before)[-1]


def _a_finished_run(page: Any, server: AppServer) -> None:
    """History needs a run with a video: the earlier tests made some; alone, this makes one."""
    open_app(page, server.url)
    if not any(r["state"] == "completed" for r in read_ledger_rows(server.db_path)):
        _generate(page, server, "A lantern for the history, e2e")
    _wait_rows(server.db_path, lambda rows: any(r["state"] == "completed" for r in rows))


def _in_view(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not on the page"
    return box["y"], box["y"] + box["height"]


# ------------------------------------------------------------------ item 6: counter and hint
def test_counter_counts_while_typing_and_one_ctrl_enter_hint(server: AppServer, page: Any) -> None:
    open_app(page, server.url)
    box = page.locator(PROMPT_BOX).first
    box.click()
    page.keyboard.type("A fox at dawn", delay=40)  # still focused: Streamlit has not been sent the text
    counter = page.locator(".st-key-compose_prompt_count")
    assert counter.inner_text().startswith(f"13 / {MAX_PROMPT}"), counter.inner_text()
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    assert counter.inner_text().startswith(f"11 / {MAX_PROMPT}"), counter.inner_text()
    text = page.locator(".st-key-compose_prompt_box").inner_text()
    assert "Ctrl+Enter generates" in text and "to apply" not in text, text
    assert box.evaluate("e => document.activeElement === e")  # all of it before the box lost focus
    page.keyboard.press("Tab")
    wait_for_app(page)
    assert counter.inner_text().startswith(f"11 / {MAX_PROMPT}")  # the server's number agrees


# ------------------------------------------------------------------ item 6: one limit, one list
def test_uploader_states_the_same_limit_and_formats_as_the_rules(server: AppServer, page: Any,
                                                                   tmp_path: Path) -> None:
    open_app(page, server.url)
    zone = page.locator(f"{FIRST_BOX} [data-testid='stFileUploaderDropzone']")
    assert f"{MAX_IMAGE_MB}MB per file • JPG, PNG" in zone.inner_text().replace("\n", " "), zone.inner_text()
    page.locator(f"{FIRST_BOX} [data-testid='stTooltipIcon']").first.hover()
    tip = page.locator("[data-testid='stTooltipContent']")
    tip.wait_for(timeout=5_000)
    assert f"{IMAGE_FORMATS_TEXT}," in tip.inner_text() and f"up to {MAX_IMAGE_MB} MB" in tip.inner_text()
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 11_000_000)
    page.locator(f"{FIRST_BOX} input[type=file]").set_input_files(str(big))
    assert "must be 10.0MB or smaller" in page.locator(FIRST_BOX).inner_text()


# ------------------------------------------------------------------ item 6: a frame, the paste box, layout
def test_frame_upload_keeps_the_layout_and_hides_internal_addresses(server: AppServer, page: Any,
                                                                     tmp_path: Path) -> None:
    open_app(page, server.url)
    page.locator(PROMPT_BOX).first.fill("The lake from the uploaded frame, e2e")
    page.keyboard.press("Tab")
    wait_for_app(page)
    settings_h = page.locator(".st-key-compose_settings").bounding_box()["height"]
    y_before = page.locator(GENERATE).bounding_box()["y"]

    page.locator(f"{FIRST_BOX} input[type=file]").set_input_files(str(_frame_png(tmp_path / "lake.png")))
    image = page.locator(f"{FIRST_BOX} [data-testid='stImage'] img")
    image.wait_for(timeout=20_000)
    wait_for_app(page)

    paste = page.locator(f"{FIRST_BOX} input[type=text]")
    assert paste.input_value() == ""
    assert "127.0.0.1" not in page.locator(".st-key-compose_prompt_box").evaluate(
        "e => e.closest('[data-testid=stColumn]').innerText")
    # the settings row does not wrap; the preview stays inside its column and short
    assert page.locator(".st-key-compose_settings").bounding_box()["height"] == settings_h
    col, img = page.locator(FIRST_BOX).bounding_box(), image.bounding_box()
    assert img["x"] + img["width"] <= col["x"] + col["width"] + 0.5, (img, col)
    assert img["height"] <= 121, img
    moved = page.locator(GENERATE).bounding_box()["y"] - y_before
    assert abs(moved) <= 4, f"Generate moved {moved:.0f} px when a frame was added"

    row = _generate(page, server, "The lake from the uploaded frame, e2e")
    assert '"image_urls"' in row["params"] and "/files/" in row["params"], row["params"]  # still sent
    card = page.locator(f".st-key-card_{row['run_id']}")
    card.wait_for(timeout=10_000)
    wait_for_app(page)
    card.get_by_role("button", name="Code").click()
    code = page.locator("[data-testid='stPopoverBody'] pre")
    code.first.wait_for(timeout=5_000)
    snippets = "\n".join(code.all_inner_texts())
    assert "curl" in snippets and "requests.post" in snippets, snippets
    assert "<YOUR_IMAGE_URL>" in snippets and "127.0.0.1" not in snippets, snippets


def _form_y(page: Any, selector: str) -> float:
    """Where `selector` is in the form (from the prompt box's top): the same whatever the scroll."""
    return page.locator(selector).bounding_box()["y"] - page.locator(PROMPT_BOX).first.bounding_box()["y"]


# Where elements are (from the top of `box`, or on screen with no box), once they have held still for 5
# animation frames in a row (at most 5 s): Streamlit swaps elements in a rerun's last paints and a wheel
# scroll lands over several frames, so a reading taken in between (a busy machine spreads them out) is a
# moment on the way, not the layout.
FORM_YS_JS = """([sels, box]) => new Promise((done) => {
    const read = () => { const top = box ? document.querySelector(box).getBoundingClientRect().top : 0;
        return sels.map(s => document.querySelector(s).getBoundingClientRect().top - top); };
    let last = null, still = 0;
    const look = () => {
        const ys = read();
        still = last && ys.every((y, i) => Math.abs(y - last[i]) < 0.5) ? still + 1 : 0;
        last = ys;
        if (still >= 5) done(ys); else requestAnimationFrame(look);
    };
    requestAnimationFrame(look);
    setTimeout(() => done(last || read()), 5000);
})"""


def _settled_form_ys(page: Any) -> tuple[float, float]:
    """Generate's and the price's form places (as _form_y), read once the layout holds still."""
    ys = page.evaluate(FORM_YS_JS, [[GENERATE, ".st-key-compose_estimate"], PROMPT_BOX])
    return ys[0], ys[1]


def _gateway_image(server: AppServer, size: tuple[int, int]) -> str:
    """A public-looking image URL to paste: a PNG put on the local gateway's file host."""
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, "PNG")
    r = requests.post(f"{server.gateway.url}/v1/uploads/images", timeout=10,
                      files={"file": ("tall.png", buf.getvalue(), "image/png")},
                      headers={"Authorization": "Bearer local-e2e"})
    r.raise_for_status()
    return r.json()["data"]["url"]


@pytest.mark.parametrize("how", ["upload", "paste"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_adding_or_removing_a_frame_does_not_move_generate(server: AppServer, browser: Any, tmp_path: Path,
                                                           viewport: dict[str, int], how: str) -> None:
    """The preview has its slot from the start: Generate and its price stay where the user saw them."""
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    try:
        open_app(page, server.url)
        name = "desktop" if viewport == DESKTOP else "phone"
        at_start = _settled_form_ys(page)
        slot = page.locator(".st-key-compose_first_frame_preview")
        assert "No first frame" in slot.inner_text()
        screenshot(page, f"polish_frame_{name}_{how}_before")
        paste = page.locator(f"{FIRST_BOX} input[type=text]")
        if how == "upload":
            page.locator(f"{FIRST_BOX} input[type=file]").set_input_files(str(_frame_png(tmp_path / "f.png")))
        else:
            paste.fill(_gateway_image(server, (450, 800)))
            paste.press("Enter")
        image = slot.locator("[data-testid='stImage'] img")
        image.wait_for(timeout=20_000)
        wait_for_app(page)
        page.wait_for_function("e => e.complete && e.naturalHeight > 0", arg=image.element_handle(),
                               timeout=10_000)
        with_frame = _settled_form_ys(page)
        screenshot(page, f"polish_frame_{name}_{how}_after")
        box, img = slot.bounding_box(), image.bounding_box()
        assert img["height"] > 40 and img["y"] + img["height"] <= box["y"] + box["height"], (img, box)
        assert ("f.png" if how == "upload" else "pasted URL") in slot.inner_text()
        if how == "upload":
            page.locator(f"{FIRST_BOX} [data-testid='stFileChipDeleteBtn']").first.click()
        else:
            paste.fill("")
            paste.press("Enter")
        expect(slot).to_contain_text("No first frame", timeout=10_000)
        wait_for_app(page)
        removed = _settled_form_ys(page)
        for label, ys in (("added", with_frame), ("removed", removed)):
            moved = [after - before for before, after in zip(at_start, ys, strict=True)]
            assert all(abs(m) <= 4 for m in moved), f"frame {label}: Generate, price moved {moved} px"
    finally:
        ctx.close()


# ------------------------------------------------------------------ item 5: the new card, the playing video
@pytest.mark.serial  # scrolled to within seconds of the last press: run alone (tests/conftest.py)
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_generate_brings_the_new_card_into_view(server: AppServer, browser: Any,
                                                viewport: dict[str, int]) -> None:
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    try:
        open_app(page, server.url)
        row = _generate(page, server, f"A kite over the dunes, {viewport['width']} px, e2e")  # scrolled to it
        card = f".st-key-card_{row['run_id']}"
        page.wait_for_selector(f"{card}[data-kp-new]", timeout=3_000)  # marked, so the eye finds it
        # scrolled to once the person has stopped pressing (2.5 s without a press: a double click's
        # second press still lands on Generate, tests/e2e/test_presses_e2e.py)
        page.wait_for_function("(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
                               " return r.top >= 0 && r.top < window.innerHeight * 0.8; }", arg=card,
                               timeout=8_000)
        top, _ = _in_view(page, card)
        assert 0 <= top < viewport["height"] * 0.8, f"the new card's top is at {top:.0f} px"
    finally:
        ctx.close()


@pytest.mark.serial  # a playing video's place, frame by frame: run alone (tests/conftest.py)
def test_a_playing_video_keeps_its_place_when_a_run_starts(server: AppServer, page: Any) -> None:
    open_app(page, server.url)
    first = _generate(page, server, "A slow river under a bridge, e2e")
    video = page.locator(f".st-key-card_{first['run_id']} video")
    video.wait_for(timeout=60_000)
    wait_for_app(page)
    page.mouse.move(900, 400)
    page.mouse.wheel(0, -5_000)  # back up: the prompt (left) and the video (right) both in view
    page.wait_for_timeout(300)
    video.evaluate("v => { v.loop = true; return v.play(); }")  # the user presses play
    box = page.locator(PROMPT_BOX).first
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("Another run starting meanwhile, e2e")
    # where the video is on screen, once it holds still (FORM_YS_JS with no box: viewport y)
    top = page.evaluate(FORM_YS_JS, [[f".st-key-card_{first['run_id']} video"], None])[0]
    assert 0 <= top < DESKTOP["height"], top
    # where the video is painted, frame by frame (read in requestAnimationFrame, as the screen shows it)
    video.evaluate("""v => { window.__kpTops = []; const f = () => {
        if (!window.__kpTops) return; window.__kpTops.push(v.getBoundingClientRect().top);
        requestAnimationFrame(f); }; requestAnimationFrame(f); }""")
    page.keyboard.press("Control+Enter")  # Generate, without scrolling: its card lands above the video
    second = _wait_rows(server.db_path, lambda rows: len(rows) > 1)[-1]
    page.locator(f".st-key-card_{second['run_id']}").wait_for(timeout=10_000)
    page.wait_for_timeout(3_000)  # while the new card grows above it (progress, then its video)
    tops = page.evaluate("() => { const t = window.__kpTops; window.__kpTops = null; return t; }")
    assert len(tops) > 20, "too few frames painted to judge"
    worst = max(abs(t - top) for t in tops)
    assert not video.evaluate("v => v.paused"), "the video stopped"
    assert worst <= 8, f"the playing video moved {worst:.0f} px"


# ------------------------------------------------------------------ item 9: History on a phone, desktop
def test_history_on_a_phone_is_compact_and_shows_the_clicked_run(server: AppServer, phone: Any) -> None:
    _a_finished_run(phone, server)
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    open_app(phone, server.url + "/history")
    expect(phone.locator(".st-key-hist_wide")).to_be_hidden()
    grid = phone.locator(".st-key-hist_compact [data-testid='stDataFrame']")
    expect(grid).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    grid.locator("[role='gridcell']").first.wait_for(state="attached", timeout=10_000)
    heads = grid.locator("[role='columnheader']").all_text_contents()  # the grid's accessible table
    cells = grid.locator("[role='gridcell']").all_text_contents()
    assert heads == ["Run"], heads  # one cell a row: state, mode, duration and the prompt
    assert cells and all(" · 5 s · " in c for c in cells) and any("e2e" in c for c in cells), cells[:6]
    phone.wait_for_timeout(500)  # the grid's canvas paints after its accessible table
    screenshot(phone, "history-390x844")
    grid.scroll_into_view_if_needed()
    phone.wait_for_timeout(300)
    box = grid.bounding_box()
    phone.mouse.click(box["x"] + 16, box["y"] + 35 + 23)  # the first row's checkbox
    detail = phone.locator(".st-key-hist_detail")
    detail.wait_for(timeout=10_000)
    phone.wait_for_timeout(600)
    top, _ = _in_view(phone, ".st-key-hist_detail")
    assert 0 <= top < PHONE["height"] * 0.6, f"the detail panel starts at {top:.0f} px"

    detail.get_by_role("button", name="Share").click()
    body = phone.locator("[data-testid='stPopoverBody']")
    link = body.locator("code").first.inner_text().strip()
    assert link.startswith(server.url + "/s/"), link  # the short link (the embed code follows it)
    code_box, body_box = body.locator("pre").first.bounding_box(), body.bounding_box()
    assert code_box["x"] + code_box["width"] <= body_box["x"] + body_box["width"] + 0.5
    assert body.evaluate("e => { const p = e.querySelector('pre'); return p.scrollWidth <= p.clientWidth; }")
    copy = body.get_by_role("button", name="Copy to clipboard").first
    expect(copy).to_be_visible()  # shown without hovering: a phone has no hover
    assert copy.evaluate("""b => { for (let p = b; p; p = p.parentElement) {
        const s = getComputedStyle(p); if (s.visibility !== 'visible' || s.opacity === '0') return false; }
        return true; }"""), "the copy button is in the page but not to be seen"
    copy.click()
    assert phone.evaluate("navigator.clipboard.readText()") == link


def test_history_on_a_phone_shows_runs_first_and_its_filters_behind_a_switch(server: AppServer,
                                                                            phone: Any) -> None:
    """The filters under the search box stacked into a whole phone screen above the runs: on a phone
    they sit behind "More filters", which says how many are set while they are hidden; a desktop shows
    them as before and never the switch."""
    _a_finished_run(phone, server)
    open_app(phone, server.url + "/history")
    grid = phone.locator(".st-key-hist_compact [data-testid='stDataFrame']")
    expect(grid).to_be_visible()
    hidden = [phone.locator(".st-key-hist_more"), phone.locator(".st-key-hist_more_triage")]
    for part in hidden:
        expect(part).to_be_hidden()
    top, _ = _in_view(phone, ".st-key-hist_compact [data-testid='stDataFrame']")
    assert top < PHONE["height"] - 150, f"the runs start at {top:.0f} px, below the first screen"
    switch = phone.locator(".st-key-hist_more_switch")
    switch.get_by_text("More filters").click()
    wait_for_app(phone)
    for part in hidden:
        expect(part).to_be_visible()
    phone.locator(".st-key-hist_triage_filters").get_by_text("Favourites only").click()
    wait_for_app(phone)
    expect(phone.locator(".st-key-hist_toolbar").get_by_text("No runs match these filters.")).to_be_visible()
    switch.get_by_text("More filters").click()  # hidden again: still applied, and said so
    wait_for_app(phone)
    expect(switch.get_by_text("1 filter on")).to_be_visible()
    expect(phone.locator(".st-key-hist_toolbar").get_by_text("No runs match these filters.")).to_be_visible()
    for part in hidden:
        expect(part).to_be_hidden()
    screenshot(phone, "history-390x844-filters-behind-switch")
    phone.set_viewport_size(DESKTOP)  # the same page wide: the filters, no switch
    phone.wait_for_timeout(300)
    expect(switch).to_be_hidden()
    for part in hidden:
        expect(part).to_be_visible()
    phone.locator(".st-key-hist_triage_filters").get_by_text("Favourites only").click()  # leave it as found
    wait_for_app(phone)
    phone.set_viewport_size(PHONE)


def test_history_toolbar_leaves_export_csv_clear_on_desktop(server: AppServer, page: Any) -> None:
    _a_finished_run(page, server)
    open_app(page, server.url + "/history")
    expect(page.locator(".st-key-hist_compact")).to_be_hidden()
    grid = page.locator(".st-key-hist_wide [data-testid='stDataFrame']")
    grid.hover()
    tools = page.locator(".st-key-hist_wide [data-testid='stElementToolbar'] button")
    tools.first.wait_for(state="visible", timeout=5_000)
    e = page.get_by_role("button", name="Export CSV").bounding_box()
    assert e is not None
    for t in (tools.nth(i).bounding_box() for i in range(tools.count())):
        assert t is not None
        overlap = not (t["y"] >= e["y"] + e["height"] or t["y"] + t["height"] <= e["y"]
                       or t["x"] >= e["x"] + e["width"] or t["x"] + t["width"] <= e["x"])
        assert not overlap, f"a table tool at {t} covers Export CSV at {e}"
    screenshot(page, "history-1280x800")
