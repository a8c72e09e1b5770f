"""The prompt library in headless Chromium: save a preset from Compose, reload, start from it, and the form
is filled; nothing reaches the gateway (its own request log) and no run is written. Screenshots of the
controls at 1280×800 and 390×844."""
from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import PHONE, open_app, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PROMPT = "A red fox trotting through fresh snow at dawn, e2e preset"


def presets_in(db_path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db_path)
    try:
        return list(con.execute("SELECT name, tags FROM presets"))
    finally:
        con.close()


def _save(page, name: str, tags: str) -> None:
    page.get_by_role("button", name="Save as preset").click()
    page.get_by_role("textbox", name="Preset name").fill(name)
    tags_box = page.get_by_role("textbox", name="Tags")
    tags_box.fill(tags)
    tags_box.press("Tab")  # Streamlit sends a text input's value on blur
    wait_for_app(page)


def test_save_a_preset_reload_and_start_from_it(app_server, gateway_process, page):
    open_app(page, app_server.url)
    page.locator(".st-key-compose_prompt textarea").fill(PROMPT)
    page.get_by_text("pro (1080p)").click()
    wait_for_app(page)
    page.get_by_text("10 s", exact=True).click()
    wait_for_app(page)
    _save(page, "Fox at dawn", "nature, snow")
    screenshot(page, "presets-1280x800-save-popover")
    page.get_by_role("button", name="Save preset").click()
    wait_for_app(page)
    expect(page.get_by_text("Saved the preset “Fox at dawn”. Nothing was sent or charged.")).to_be_visible()
    assert presets_in(app_server.db_path) == [("Fox at dawn", '["nature", "snow"]')]

    page.reload()
    wait_for_app(page)
    prompt = page.locator(".st-key-compose_prompt textarea")
    prompt.fill("something else entirely")
    prompt.press("Tab")
    wait_for_app(page)
    page.get_by_role("button", name="Start from preset").click()
    page.locator(".st-key-preset_compose_tag button", has_text="snow").click()  # the tag filter
    wait_for_app(page)
    page.get_by_role("combobox", name=re.compile("Preset")).click()
    page.get_by_role("option", name="Fox at dawn [nature, snow]").click()
    wait_for_app(page)
    screenshot(page, "presets-1280x800-start-popover")
    page.get_by_role("button", name="Fill the form").click()
    wait_for_app(page)
    expect(prompt).to_have_value(PROMPT)
    expect(page.get_by_role("radio", name="pro (1080p)")).to_be_checked()
    expect(page.get_by_role("radio", name="10 s")).to_be_checked()
    expect(page.get_by_text(re.compile("Filled in from the preset “Fox at dawn”"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Generate · Pro 1080p · 10 s"))).to_be_visible()
    screenshot(page, "presets-1280x800-filled")
    # the same preset starts a Compare grid (std and pro, its duration and aspect)
    page.goto(app_server.url + "/compare")
    wait_for_app(page)
    page.get_by_role("button", name="Start grid from preset").click()
    page.get_by_role("combobox", name=re.compile("Preset")).click()
    page.get_by_role("option", name="Fox at dawn [nature, snow]").click()
    wait_for_app(page)
    screenshot(page, "presets-1280x800-compare-popover")
    page.get_by_role("button", name="Fill the grid").click()
    wait_for_app(page)
    expect(page.get_by_role("button", name=re.compile(r"Submit grid · 2 runs"))).to_be_visible()
    expect(page.locator(".st-key-cmp_form textarea").first).to_have_value(PROMPT)
    page.goto(app_server.url + "/presets")
    wait_for_app(page)
    page.get_by_text("Fox at dawn · nature, snow").click()
    wait_for_app(page)
    screenshot(page, "presets-1280x800-manager")
    page.wait_for_timeout(1000)  # anything a click could have sent would be in the log by now
    assert gateway_process.requests("submit") == [] and read_ledger_rows(app_server.db_path) == []


def test_the_preset_controls_on_a_phone(app_server, browser):
    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    try:
        open_app(page, app_server.url)
        page.locator(".st-key-compose_prompt textarea").fill("A heron on one leg, phone")
        _save(page, "Heron", "birds")
        screenshot(page, "presets-390x844-save-popover")
        page.get_by_role("button", name="Save preset").click()
        wait_for_app(page)
        expect(page.get_by_text("Saved the preset “Heron”.", exact=False)).to_be_visible()
        page.keyboard.press("Escape")
        page.goto(app_server.url + "/presets")
        wait_for_app(page)
        page.get_by_text("Heron · birds").click()
        wait_for_app(page)
        screenshot(page, "presets-390x844-manager")
        assert presets_in(app_server.db_path) == [("Heron", '["birds"]')]
    finally:
        ctx.close()
