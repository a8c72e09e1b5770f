"""A shot chain of three, in Chromium against `streamlit run app.py` and a separate local gateway process:
make a run, continue it from its last frame twice (the scrubber, Compose, Generate), open the Sequence,
export one MP4 and play it back (issue 17, item 1). Cheap: std 5 s runs on a fast gateway clock, one test.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

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

PROMPT = "A paper boat drifting down a rain gutter, low angle, soft afternoon light"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("chains")
    gateway = GatewayProcess(root / "gateway", speed=40).start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


def rows(app: AppServer) -> list[dict]:
    return read_ledger_rows(app.db_path) if app.db_path.exists() else []


def wait_until(what: str, check: Any, limit: float = 60.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for: {what}")


def links(app: AppServer) -> list[tuple[str, str, float, str]]:
    import sqlite3

    con = sqlite3.connect(app.db_path)
    try:
        return list(con.execute("SELECT run_id, parent_run_id, frame_time, role FROM chain_links "
                                "ORDER BY position"))
    finally:
        con.close()


def archived(app: AppServer, count: int) -> list[dict]:
    def done() -> list[dict]:
        found = [r for r in rows(app) if r["state"] == "completed" and r["video_path"]]
        return found if len(found) >= count else []

    return wait_until(f"{count} archived runs", done)


def continue_from_last_frame(page: Any, run_id: str, shot: str) -> None:
    """The scrubber on `run_id`'s card: last frame chosen, shown full size; Continue; Generate in Compose."""
    card = page.locator(f".st-key-card_{run_id}")
    card.get_by_text("Done").wait_for(timeout=30_000)
    page.locator(f".st-key-card_chain_{run_id} button:visible").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("(the last frame)").wait_for(timeout=20_000)
    picture = dialog.locator(f".st-key-chain_{run_id}_picture img")
    picture.wait_for(timeout=10_000)
    natural = picture.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [1280, 720], natural  # the frame at full size, cut on the server
    if shot == "2":
        screenshot(page, "chain_scrubber_desktop")
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(600)
        screenshot(page, "chain_scrubber_phone")
        page.set_viewport_size(DESKTOP)
        page.wait_for_timeout(300)
    dialog.locator(f".st-key-chain_{run_id}_use_first button").click()
    page.locator(".st-key-compose_chain_note").wait_for(timeout=20_000)
    wait_for_app(page)
    assert "Next shot of a chain" in page.locator(".st-key-compose_chain_note").inner_text()
    assert page.locator(".st-key-compose_prompt textarea").input_value() == PROMPT
    page.locator(".st-key-compose_generate button").click()


def test_a_chain_of_three_shots_is_exported_and_plays_as_one(browser: Any, server: AppServer) -> None:
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    try:
        open_app(page, server.url)
        box = page.locator(".st-key-compose_prompt textarea")
        box.fill(PROMPT)
        box.press("Tab")
        page.wait_for_timeout(300)
        wait_for_app(page)
        page.locator(".st-key-compose_generate button").click()
        first = archived(server, 1)[0]["run_id"]
        submits = len(server.gateway.requests("submit"))

        continue_from_last_frame(page, first, "2")
        second = wait_until("shot 2 linked", lambda: len(links(server)) == 1 and links(server)[0])
        assert second[1] == first and second[3] == "first" and 4.9 < second[2] <= 5.0
        archived(server, 2)
        continue_from_last_frame(page, second[0], "3")
        third = wait_until("shot 3 linked", lambda: len(links(server)) == 2 and links(server)[1])
        assert third[1] == second[0]
        archived(server, 3)
        assert len(server.gateway.requests("submit")) == submits + 2  # one run per Generate, nothing else
        uploads = server.gateway.requests("upload")
        assert len(uploads) == 2  # each chosen frame uploaded once

        card = page.locator(f".st-key-card_{third[0]}")
        card.get_by_text("Done").wait_for(timeout=30_000)
        page.locator(f".st-key-card_sequence_{third[0]} button:visible").click()
        page.get_by_role("heading", name="Sequence").wait_for(timeout=20_000)
        wait_for_app(page)
        assert page.locator("[class*='st-key-sequence_shot_']").count() == 3
        # before the export: one player plays the shots one after another (the end of shot 1 leads to 2)
        playlist = page.locator(".st-key-sequence_playlist video")
        first_src = playlist.get_attribute("src")
        moved = playlist.evaluate("""async v => {
            v.muted = true;
            if (v.readyState < 1) await new Promise(ok => v.addEventListener('loadedmetadata', ok));
            v.currentTime = v.duration - 0.2; await v.play();
            const t0 = Date.now();
            while (v.dataset.shot !== '1' && Date.now() - t0 < 8000) {
                await new Promise(r => setTimeout(r, 100)); }
            return [v.dataset.shot, v.src]; }""")
        assert moved[0] == "1" and moved[1] != first_src, moved
        assert "Shot 2 of 3" in page.locator(".st-key-sequence_playlist").inner_text()
        page.locator(".st-key-sequence_export button:visible").click()
        video = page.locator(".st-key-sequence_file video")
        video.wait_for(timeout=60_000)
        wait_for_app(page)
        duration = video.evaluate("v => new Promise(ok => v.readyState >= 1 ? ok(v.duration) :"
                                  " v.addEventListener('loadedmetadata', () => ok(v.duration)))")
        assert duration == pytest.approx(15.0, abs=0.2)  # 3 × 5 s
        played = video.evaluate("async v => { v.muted = true; await v.play();"
                                " await new Promise(r => setTimeout(r, 1500)); return v.currentTime; }")
        assert played > 0.3, played
        sequence_url = page.url
        screenshot(page, "chain_sequence_desktop")
        page.locator(".st-key-sequence_shot_1").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        screenshot(page, "chain_sequence_shots_desktop")
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(600)
        page.locator(".st-key-sequence_player").scroll_into_view_if_needed()
        screenshot(page, "chain_sequence_phone")

        # the link opens for a stranger (a new context: no session), and a second Export is not offered
        other = browser.new_context(viewport=DESKTOP)
        try:
            stranger = other.new_page()
            open_app(stranger, sequence_url)
            stranger.locator(".st-key-sequence_file video").wait_for(timeout=20_000)
            assert stranger.locator(".st-key-sequence_export").count() == 0
        finally:
            other.close()
        videos = [r for r in rows(server) if r["video_path"]]
        assert len(videos) == 3  # the export is not a run
    finally:
        ctx.close()
