"""Card actions act at once, recover says what an unknown id is, a pasted frame URL is judged when
pasted: in Chromium against `streamlit run app.py` and a separate local gateway process (issue 14, 1-3).

One app server for the module; each case opens its own tab. What the user sees is read from the page,
what would be billed from the gateway's request log and the ledger file.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from lib import pasted_image
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

PROMPT = "A glass of iced tea on a sunny windowsill, condensation, slow push in"
ACT_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("cards")
    gateway = GatewayProcess(root / "gateway", speed=20).start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    yield page
    ctx.close()


def rows(app: AppServer) -> list[dict]:
    return read_ledger_rows(app.db_path) if app.db_path.exists() else []


def wait_until(what: str, check: Any, limit: float = 30.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for: {what}")


def prompt_box(page: Any) -> Any:
    return page.locator(".st-key-compose_prompt textarea")


def set_prompt(page: Any, text: str) -> None:
    box = prompt_box(page)
    box.fill(text)
    box.press("Tab")  # a text area commits its value on blur
    page.wait_for_timeout(300)
    wait_for_app(page)


def made_run(page: Any, app: AppServer) -> str:
    """Generate once and wait for the card to say Done; the run's id."""
    set_prompt(page, PROMPT)
    page.locator(".st-key-compose_generate button").click()
    run = wait_until("the run in the ledger", lambda: [r for r in rows(app) if r["state"] == "completed"
                                                         and r["video_path"]])[0]
    page.locator(f".st-key-card_{run['run_id']}").get_by_text("Done").wait_for(timeout=15_000)
    return str(run["run_id"])


@pytest.mark.serial  # each action within 2 s: run alone (tests/conftest.py)
def test_rerun_and_open_in_compare_on_a_live_compose_card_act_at_once(tab: Any, server: AppServer) -> None:
    open_app(tab, server.url)
    run_id = made_run(tab, server)
    set_prompt(tab, "")  # the form moved on; Re-run must bring the run's settings back
    tab.wait_for_timeout(1500)  # the cards' fragment keeps ticking meanwhile, as in the walkthrough
    before = len(rows(server))

    tab.locator(f".st-key-card_rerun_{run_id} button:visible").click()
    t0 = time.monotonic()
    tab.wait_for_function("(p) => [...document.querySelectorAll('.st-key-compose_prompt textarea')]"
                          ".some(t => t.value === p)", arg=PROMPT, timeout=ACT_WITHIN_S * 1000)
    took = time.monotonic() - t0
    assert took < ACT_WITHIN_S, took
    wait_for_app(tab)
    assert len(rows(server)) == before  # Re-run fills the form; it sends nothing
    screenshot(tab, "cards_rerun_desktop")

    tab.locator(f".st-key-card_compare_{run_id} button:visible").click()
    t0 = time.monotonic()
    tab.get_by_text("This run beside its pair").wait_for(timeout=ACT_WITHIN_S * 1000 + 1000)
    took = time.monotonic() - t0
    assert "/compare" in tab.url and f"run={run_id}" in tab.url, tab.url
    assert took < ACT_WITHIN_S + 1, took
    wait_for_app(tab)
    make = tab.locator(f".st-key-pair_make_{run_id} button:visible")
    assert "Make the pro (1080p) version" in make.inner_text()
    assert len(rows(server)) == before  # opening compare sent nothing: no new paid grid
    screenshot(tab, "cards_pair_desktop")
    tab.set_viewport_size(PHONE)
    tab.wait_for_timeout(500)
    screenshot(tab, "cards_pair_phone")
    tab.set_viewport_size(DESKTOP)

    mark = len(server.gateway.requests())
    make.click()
    wait_until("the pro half in the ledger", lambda: len(rows(server)) == before + 1)
    pro = wait_until("the pro run", lambda: [r for r in rows(server) if r["mode"] == "pro"])[0]
    tab.locator(f".st-key-pair_pro_{pro['run_id']}").wait_for(timeout=10_000)  # beside the std run
    tab.wait_for_timeout(1500)
    submits = [e for e in server.gateway.requests()[mark:] if e.get("category") == "submit"]
    assert len(submits) == 1  # the missing half only, once


def test_recover_an_unknown_task_id_says_so_and_saves_nothing(tab: Any, server: AppServer) -> None:
    open_app(tab, f"{server.url}/history")
    tab.get_by_role("tab", name="Recover by task id").click()
    before = len(rows(server))
    field = tab.get_by_role("textbox", name="Task id", exact=True)
    field.fill("task_never_made_here_01")
    tab.get_by_role("button", name="Recover").click()
    tab.get_by_text("No task with that id on this gateway").wait_for(timeout=10_000)
    alerts = " ".join(tab.locator("[data-testid='stAlert']").all_inner_texts())
    assert "No task with that id on this gateway" in alerts and "api key" not in alerts.lower(), alerts
    wait_for_app(tab)
    assert len(rows(server)) == before  # no "(prompt unknown)" run, no red card, nothing in the stats
    screenshot(tab, "cards_recover_desktop")
    tab.set_viewport_size(PHONE)
    tab.wait_for_timeout(500)
    screenshot(tab, "cards_recover_phone")


def test_a_pasted_frame_url_is_judged_when_pasted_and_nothing_is_spent(tab: Any, server: AppServer) -> None:
    open_app(tab, server.url)
    set_prompt(tab, "A paper lantern rising at night")
    before, mark = len(rows(server)), len(server.gateway.requests())
    field = tab.locator(".st-key-compose_first_frame_box input[type='text']")

    # an http address of an HTML page (this app's own page: a local address, never fetched)
    field.fill(f"{server.url}/")
    field.press("Enter")
    tab.get_by_text(pasted_image.unreachable("first frame")[:60]).first.wait_for(timeout=15_000)
    wait_for_app(tab)
    assert tab.locator(".st-key-compose_first_frame_box img").count() == 0  # no broken-image icon
    box = tab.locator(".st-key-compose_first_frame_box")
    box.scroll_into_view_if_needed()
    screenshot(tab, "cards_paste_desktop")
    tab.set_viewport_size(PHONE)
    tab.wait_for_timeout(500)
    box.scroll_into_view_if_needed()
    screenshot(tab, "cards_paste_phone")
    tab.set_viewport_size(DESKTOP)

    # a reachable address that answers with something that is not an image (the gateway's JSON)
    field.fill(f"{server.gateway.url}/__control/info")
    field.press("Enter")
    tab.get_by_text("The first frame is not a JPEG or PNG image").first.wait_for(timeout=15_000)
    wait_for_app(tab)

    tab.locator(".st-key-compose_generate button").click()
    tab.wait_for_timeout(1500)
    wait_for_app(tab)
    assert tab.get_by_text("The first frame is not a JPEG or PNG image").count() >= 1
    assert len(rows(server)) == before
    spent = [e for e in server.gateway.requests()[mark:] if e.get("category") in ("submit", "upload")]
    assert spent == []
