"""TOAPIS_CONTRACT=latest in headless Chromium: Sound on, 12 s, std — the price names Sound before the press,
the run completes, and the archived MP4 the card plays has an audio track (opened with PyAV)."""
from __future__ import annotations

import re
from pathlib import Path

import av
import pytest
from playwright.sync_api import expect

from tests.fixtures.servers import PHONE, AppServer, open_app, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e


@pytest.fixture
def latest_app(tmp_path: Path, gateway_process):
    gateway_process.control("config", contract="latest")
    archive = tmp_path / "archive"
    app = AppServer(tmp_path / "app", gateway_process,
                    extra_env={"TOAPIS_CONTRACT": "latest", "PLAYGROUND_ARCHIVE": str(archive)}).start()
    yield app, archive
    app.stop()


def _to_top(page) -> None:
    size = page.viewport_size or {"width": 390, "height": 800}
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.wait_for_timeout(400)


def test_sound_12s_std_is_priced_runs_and_has_audio(latest_app, page, browser, gateway_process):
    app, archive = latest_app
    open_app(page, app.url)
    page.locator(".st-key-compose_prompt textarea").fill("A street drummer at dusk, latest e2e")
    # the duration slider: focus its thumb and step from 5 s to 12 s with the keyboard, as a person can
    thumb = page.locator(".st-key-compose_duration input[type='range']").first
    thumb.focus()
    for _ in range(7):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(120)
    wait_for_app(page)
    expect(page.locator(".st-key-compose_duration [data-testid='stSliderThumbValue']")).to_have_text("12 s")
    page.get_by_text("Sound", exact=True).first.click()
    wait_for_app(page)
    generate = page.locator(".st-key-compose_generate button")
    expect(generate).to_contain_text("12 s · ≈ $1.19 (Sound ≈ $0.75)", timeout=20_000)
    expect(page.locator(".st-key-compose_estimate")).to_contain_text("(Sound ≈ $0.75)")
    _to_top(page)
    screenshot(page, "compose-latest-1280x800")
    generate.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    screenshot(page, "compose-latest-1280x800-price")
    generate.click()
    video = page.locator("[data-testid='stVideo']").first
    expect(video).to_have_attribute("src", re.compile(r"/archive/videos/.+\.mp4$"), timeout=120_000)
    rows = read_ledger_rows(app.db_path)
    assert len(rows) == 1 and rows[0]["state"] == "completed" and rows[0]["duration"] == 12
    assert '"audio": true' in rows[0]["params"] and '"contract": "latest"' in rows[0]["params"]
    sent = [r for r in gateway_process.requests("submit") if r.get("method") == "POST"] or \
        gateway_process.requests("submit")
    assert sent, "the gateway logged no submit"
    src = video.get_attribute("src") or ""
    name = src.rsplit("/", 1)[-1]
    with av.open(str(archive / "videos" / name)) as container:
        kinds = sorted(s.type for s in container.streams)
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base) if audio.duration else 0.0
    assert kinds == ["audio", "video"] and 11.5 < seconds < 12.5, (kinds, seconds)

    ctx = browser.new_context(viewport=PHONE)
    phone = ctx.new_page()
    try:
        open_app(phone, app.url)
        expect(phone.get_by_text("Sound", exact=True).first).to_be_visible()
        _to_top(phone)
        screenshot(phone, "compose-latest-390x844")
        phone.locator(".st-key-compose_generate button").scroll_into_view_if_needed()
        phone.wait_for_timeout(300)
        screenshot(phone, "compose-latest-390x844-price")
    finally:
        ctx.close()
