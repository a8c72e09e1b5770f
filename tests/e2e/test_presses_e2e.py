"""One press, one charge, in Chromium: real mouse clicks at human gaps against `streamlit run app.py` and a
separate local gateway process, whose request log is what would be billed.

Every click is checked to have landed on the button it aims at (a capture listener in the page counts
them and keeps their times), so "one submit" always means "several real presses, one charge". The
press window is the default 3 s. One app server is shared by the module (each case opens its own tab,
with its own prompt, and marks the gateway log before it clicks); the budget race has its own server.
"""
from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lib.presses import DEFAULT_WINDOW, GUARD
from tests.fixtures.servers import (
    DESKTOP,
    AppServer,
    GatewayProcess,
    open_app,
    read_ledger_rows,
    wait_for_app,
)

# timing checks (clicks at a human pace against the press window): run alone, last (tests/conftest.py)
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

GAPS_MS = (0, 50, 150, 300, 600, 1000, 2000)
CLICKS = 5
GENERATE = ".st-key-compose_generate button"

# Counts clicks whose target is inside `sel`, with their times (performance.now(), ms); keeps what every
# click hit (the nearest keyed Streamlit element) so a layout that moved under the mouse shows up.
LISTEN_JS = """(sel) => {
    window.__hits = {[sel]: []};
    window.__landed = [];
    if (window.__listening) return;
    window.__listening = true;
    document.addEventListener('click', (e) => {
        if (!(e.target instanceof Element)) return;
        for (const [s, hits] of Object.entries(window.__hits)) {
            if (e.target.closest(s)) hits.push(performance.now());
        }
        const keyed = e.target.closest('[class*="st-key-"]');
        const name = keyed ? [...keyed.classList].find(c => c.startsWith('st-key-')) : e.target.tagName;
        window.__landed.push(name);
    }, true);
}"""


def rows(app: AppServer) -> list[dict]:
    try:
        return read_ledger_rows(app.db_path) if app.db_path.exists() else []
    except sqlite3.OperationalError:
        return []


def submits(gw: GatewayProcess, mark: int) -> list[dict]:
    return [e for e in gw.requests()[mark:] if e.get("category") == "submit"]


def wait_until(what: str, check: Callable[[], Any], limit: float = 30.0,
               why: Callable[[], Any] | None = None) -> Any:
    """`check()` once it is truthy; on a timeout the message carries `why()` (the state to read)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for: {what}", why() if why else None)


def fill_prompt(page: Any, text: str) -> None:
    box = page.locator(".st-key-compose_prompt textarea")
    box.fill(text)
    box.press("Tab")  # a text area commits its value on blur
    page.wait_for_timeout(300)
    wait_for_app(page)


def _centre(page: Any, selector: str) -> tuple[float, float]:
    """Start counting clicks on `selector`; the centre of (the first element) it names."""
    page.evaluate(LISTEN_JS, selector)
    target = page.locator(selector).first
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None, f"{selector} is not on the page"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def click_at_gaps(page: Any, selector: str, clicks: int, gap_ms: int) -> list[float]:
    """Real (Playwright) mouse clicks on the element's centre, `gap_ms` apart (the mouse stays where the
    button was, as a person's does); returns the in-page times of the clicks that landed on `selector`."""
    x, y = _centre(page, selector)
    for i in range(clicks):
        if i and gap_ms:
            page.wait_for_timeout(gap_ms)
        page.mouse.click(x, y)
    return page.evaluate("(sel) => window.__hits[sel].slice()", selector)


# n clicks at the point (x, y) paced by the page's own clock, each `gap` ms after the previous one (never
# sooner; later only when the page is busy): each goes to whatever is under that point at that moment,
# with the pointer/mouse events a click is made of. Playwright's own mouse is a round trip per click
# (measured 90-800 ms on this loaded machine for a "50 ms" gap), so short gaps are paced in the page.
PACED_CLICKS_JS = """([x, y, n, gap]) => new Promise((done) => {
    let i = 0;
    const fire = () => {
        const el = document.elementFromPoint(x, y);
        const opts = {bubbles: true, cancelable: true, composed: true, view: window, clientX: x, clientY: y,
                      button: 0, buttons: 1, pointerType: 'mouse', isPrimary: true};
        el.dispatchEvent(new PointerEvent('pointerdown', opts));
        el.dispatchEvent(new MouseEvent('mousedown', opts));
        el.dispatchEvent(new PointerEvent('pointerup', {...opts, buttons: 0}));
        el.dispatchEvent(new MouseEvent('mouseup', {...opts, buttons: 0}));
        el.dispatchEvent(new MouseEvent('click', {...opts, buttons: 0, detail: 1}));
        i += 1;
        if (i < n) setTimeout(fire, gap); else done();
    };
    fire();
})"""


def paced_clicks(page: Any, selector: str, clicks: int, gap_ms: int) -> list[float]:
    """Like click_at_gaps, paced by the page's clock (see PACED_CLICKS_JS)."""
    x, y = _centre(page, selector)
    page.evaluate(PACED_CLICKS_JS, [x, y, clicks, gap_ms])
    return page.evaluate("(sel) => window.__hits[sel].slice()", selector)


def aimed_click(page: Any, selector: str, tries: int = 3) -> list[float]:
    """One deliberate click: Playwright waits until the element is visible and holds still, as a person
    aims at a button. A page that redraws can still move it away at the last moment; a click that missed
    pressed nothing (whatever it hit instead is counted by the test's ledger and log checks), so aim
    again, at most `tries` times. Returns the clicks that landed on it."""
    page.evaluate(LISTEN_JS, selector)
    for _ in range(tries):
        page.locator(selector).filter(visible=True).first.click()  # the one a person sees (a redraw
        page.wait_for_timeout(150)                                  # can leave a hidden copy first)
        hits = page.evaluate("(sel) => window.__hits[sel].slice()", selector)
        if hits:
            return hits
    return []


def gaps_of(times: list[float]) -> list[int]:
    return [round(b - a) for a, b in itertools.pairwise(times)]


def settle_runs(app: AppServer, before: int, quiet: float = 2.0, limit: float = 20.0) -> list[dict]:
    """The rows written since `before`, once no new one has appeared for `quiet` seconds."""
    deadline = time.monotonic() + limit
    seen, since = len(rows(app)), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = len(rows(app))
        if now != seen:
            seen, since = now, time.monotonic()
        elif now > before and time.monotonic() - since >= quiet:
            break
    return rows(app)[before:]


def note_text(page: Any, key: str) -> str:
    loc = page.locator(f".st-key-{key}")
    return loc.first.inner_text() if loc.count() else ""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("presses")
    gateway = GatewayProcess(root / "gateway", speed=20).start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture
def tab(shared: AppServer, browser: Any) -> Iterator[Any]:
    """A fresh tab (its own session, so its own press memory) on the shared app's Compose page."""
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    open_app(page, shared.url)
    yield page
    ctx.close()


PATIENT_WINDOW = 10.0


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """For presses repeated after a page change (back, an expander): a person takes a few seconds for
    that, and the point is the memory, not the default window (proven on Generate above)."""
    root = tmp_path_factory.mktemp("patient")
    gateway = GatewayProcess(root / "gateway", speed=20).start()
    app = AppServer(root / "app", gateway, extra_env={"PLAYGROUND_PRESS_WINDOW": str(PATIENT_WINDOW)}).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture
def patient_tab(patient: AppServer, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    open_app(page, patient.url)
    yield page
    ctx.close()


@pytest.mark.parametrize("gap_ms", GAPS_MS)
def test_five_clicks_at_a_human_gap_make_one_submit(shared: AppServer, tab: Any, gap_ms: int) -> None:
    fill_prompt(tab, f"press cadence {gap_ms} ms: a hummingbird at a red feeder")
    mark, before = len(shared.gateway.requests()), len(rows(shared))
    hits = paced_clicks(tab, GENERATE, CLICKS, gap_ms)
    assert len(hits) == CLICKS, (f"only {len(hits)} of {CLICKS} clicks landed on Generate",
                                 tab.evaluate("window.__landed"))
    measured = gaps_of(hits)
    assert all(g >= gap_ms - 5 for g in measured), measured        # never faster than claimed
    new = settle_runs(shared, before)
    assert new, ("the presses made no run at all", tab.evaluate("window.__landed"),
                 tab.locator(".st-key-compose_prompt textarea").input_value(),
                 tab.locator("[data-testid=stAlertContainer]").all_inner_texts())
    # the promise is the count below (a draft is sent within a second or two; 30 s is slack for a loaded CI)
    wait_until("the run is submitted", lambda: submits(shared.gateway, mark), limit=30.0,
               why=lambda: (new, shared.log.read_text(errors="replace")[-3000:]))
    time.sleep(1.0)  # a second run would be sent by now (the worker sends drafts at once)
    print(f"gap {gap_ms} ms: measured gaps {measured} ms -> {len(new)} run(s), "
          f"{len(submits(shared.gateway, mark))} submit(s)")
    assert len(new) == 1, [r["run_id"] for r in new]
    assert len(submits(shared.gateway, mark)) == 1
    if gap_ms >= 300:  # clicks this far apart reach the server as separate presses: the page says so
        wait_for_app(tab)
        assert "Already sent" in note_text(tab, "compose_press_note")


def test_a_press_after_the_window_and_another_take_are_new_takes(shared: AppServer, tab: Any) -> None:
    fill_prompt(tab, "new takes: a paper lantern rising over a lake")
    mark, before = len(shared.gateway.requests()), len(rows(shared))
    assert len(click_at_gaps(tab, GENERATE, 1, 0)) == 1
    first = wait_until("the first run", lambda: rows(shared)[before:])[0]
    # the same settings after the window: a second run, and the page says it is a new take. The window is
    # the server's: count it from when the first press was handled (the run's created_at), not the click
    time.sleep(max(0.0, first["created_at"] + DEFAULT_WINDOW + 0.5 - time.time()))
    assert len(click_at_gaps(tab, GENERATE, 1, 0)) == 1
    new = wait_until("a second run", lambda: rows(shared)[before:] if len(rows(shared)) - before >= 2 else [])
    wait_for_app(tab)
    note = note_text(tab, "compose_press_note")
    assert "New take" in note and "second run" in note, note
    assert new[0]["params"] == new[1]["params"] and new[1]["run_id"] != first["run_id"]

    # "Another take" on the first run's card (it shows once the run has settled), clicked three times at
    # 300 ms with the mouse kept still, as a person would: one more run, marked as a new take. The new
    # card slides in above, so the later clicks land on whatever moved under the mouse; none may spend.
    take = f".st-key-card_take_{first['run_id']} button"
    wait_until("both runs archived", lambda: all(r["video_path"] for r in rows(shared)[before:]))
    for run in rows(shared)[before:]:  # the cards have their final height: the button stays where it is
        tab.locator(f".st-key-card_{run['run_id']} video").first.wait_for(timeout=30_000)
    tab.locator(take).first.wait_for(timeout=30_000)
    wait_for_app(tab)
    assert "Another take · ≈ $0.18" in tab.locator(take).first.inner_text()
    time.sleep(max(0.0, new[1]["created_at"] + GUARD + 0.3 - time.time()))  # a person reads the note first
    hits = click_at_gaps(tab, take, 3, 300)
    print("Another take, 3 clicks at 300 ms landed on:", tab.evaluate("window.__landed"))
    assert hits, "the first click did not land on Another take"
    taken = settle_runs(shared, before + 2)
    assert len(taken) == 1 and taken[0]["parent_id"] == first["run_id"] and taken[0]["source"] == "rerun"
    assert taken[0]["params"] == first["params"]
    card = tab.locator(f".st-key-card_{taken[0]['run_id']}").first
    card.wait_for(timeout=15_000)
    assert "New take" in card.inner_text()
    time.sleep(1.0)
    assert len(submits(shared.gateway, mark)) == 3


def test_compare_std_vs_pro_double_pressed_makes_one_pair(patient: AppServer, patient_tab: Any) -> None:
    """A double click (120 ms), then, within the window, back to Compose and the same press again."""
    shared, tab = patient, patient_tab
    fill_prompt(tab, "pair press: two swans on a misty pond")
    mark, before = len(shared.gateway.requests()), len(rows(shared))
    hits = paced_clicks(tab, ".st-key-compose_compare button", 2, 120)
    print(f"Compare std vs pro: {len(hits)} of 2 clicks landed on the button (the page moves on after one)")
    assert hits, "the first click did not land on Compare std vs pro"
    new = settle_runs(shared, before, quiet=1.0)
    assert len(new) == 2 and len({r["group_id"] for r in new}) == 1, new
    assert sorted(r["label"] for r in new) == ["pro", "std"]
    tab.locator(".st-key-cmp_group").first.wait_for(timeout=15_000)   # the comparison it made is open
    # back to Compose (the form kept its settings) and the same button again, inside the window
    tab.go_back()
    wait_for_app(tab)
    assert len(aimed_click(tab, ".st-key-compose_compare button")) == 1
    again_after = time.time() - new[0]["created_at"]
    tab.locator(".st-key-cmp_press_note").first.wait_for(timeout=15_000)
    wait_for_app(tab)
    print(f"the second press came {again_after:.1f} s after the first was written")
    assert again_after < PATIENT_WINDOW
    assert "Already sent" in note_text(tab, "cmp_press_note")
    assert group_of(tab) == new[0]["group_id"]
    time.sleep(1.0)
    assert len(rows(shared)) - before == 2
    assert len(submits(shared.gateway, mark)) == 2


def group_of(page: Any) -> str:
    return page.evaluate("new URLSearchParams(location.search).get('group')") or ""


def test_submit_grid_double_pressed_makes_one_grid(patient: AppServer, patient_tab: Any) -> None:
    """A double click (120 ms) on Submit grid, then the same button again under the grid it made."""
    shared, tab = patient, patient_tab
    open_app(tab, f"{shared.url}/compare")
    box = tab.locator(".st-key-cmp_prompt_0 textarea")
    box.fill("grid press: a lighthouse beam sweeping through fog")
    box.press("Tab")
    tab.wait_for_timeout(300)
    wait_for_app(tab)
    mark, before = len(shared.gateway.requests()), len(rows(shared))
    hits = paced_clicks(tab, ".st-key-cmp_submit_grid button", 2, 120)
    print(f"Submit grid: {len(hits)} of 2 clicks landed on the button")
    assert hits, "the first click did not land on Submit grid"
    new = settle_runs(shared, before, quiet=1.0)
    assert len(new) == 2 and len({r["group_id"] for r in new}) == 1, new
    group = new[0]["group_id"]
    assert all(group not in r["run_id"] for r in new)  # cell ids are not derived from the group's
    tab.locator(".st-key-cmp_group").first.wait_for(timeout=15_000)
    wait_until("the grid archived", lambda: all(r["video_path"] for r in rows(shared)[before:]))
    tab.locator("[data-sync-player][data-count='2']").first.wait_for(timeout=15_000)  # cells stop moving
    wait_for_app(tab)
    # the form (same settings) is now folded under the grid: open it and press Submit grid again
    tab.get_by_text("New grid from these settings").first.click()
    assert len(aimed_click(tab, ".st-key-cmp_submit_grid button")) == 1
    again_after = time.time() - new[0]["created_at"]
    tab.wait_for_timeout(500)
    wait_for_app(tab)
    print(f"the press under the grid came {again_after:.1f} s after the first was written")
    assert again_after < PATIENT_WINDOW
    assert "Already sent" in note_text(tab, "cmp_press_note") and group_of(tab) == group
    time.sleep(1.0)
    assert len(rows(shared)) - before == 2
    assert len(submits(shared.gateway, mark)) == 2


# ------------------------------------------------------------------ the budget race, from two tabs

CAP = 0.30            # one std 5 s run ($0.18) fits, two ($0.37) do not
CLICK_AT_JS = """([sel, at]) => {
    const el = document.querySelector(sel);
    setTimeout(() => el.click(), Math.max(0, at - Date.now()));
}"""


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("budget")
    gateway = GatewayProcess(root / "gateway", speed=20).start()
    app = AppServer(root / "app", gateway, extra_env={"PLAYGROUND_BUDGET_USD": str(CAP)}).start()
    yield app
    app.stop()
    gateway.stop()


def test_two_tabs_pressing_at_once_never_pass_the_budget(capped: AppServer, browser: Any) -> None:
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        tabs = [ctx.new_page(), ctx.new_page()]
        for i, page in enumerate(tabs):
            open_app(page, capped.url)
            fill_prompt(page, f"budget race, tab {i + 1}: a red fox in fresh snow")
            assert "Budget: $0.30 of $0.30 left" in page.locator(".st-key-compose_estimate").inner_text()
        at = int(tabs[0].evaluate("Date.now()")) + 800   # both tabs click at this instant
        for page in tabs:
            page.evaluate(CLICK_AT_JS, [GENERATE, at])
        new = settle_runs(capped, 0)
        time.sleep(1.0)
        assert len(new) == 1, new
        spent = sum(r["est_cost"] for r in rows(capped) if r["state"] != "failed")
        assert spent <= CAP + 1e-9, spent
        assert len(submits(capped.gateway, 0)) == 1
        refusals = []
        for page in tabs:
            wait_for_app(page)
            refusals += [t for t in page.locator("[data-testid='stAlertContentError']").all_inner_texts()
                         if "already spent" in t]
        assert len(refusals) == 1, "the refused tab (and only it) must say why, with the numbers"
        words = refusals[0]
        assert "only $0.12 of the $0.30 budget is left" in words and "$0.18 already spent" in words, words
    finally:
        ctx.close()
