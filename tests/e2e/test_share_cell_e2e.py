"""One cell's share link, held by an anonymous browser, opens that cell and nothing else of its grid.

A two-cell comparison (different prompts) is written into the app's ledger as drafts; the app's own worker
sends and archives both. The grid's view, opened in one browser context, tells us what each cell looks like
to a viewer (its video URL above all, whatever the archive's naming). Then a fresh context, holding only the
first cell's link, loads it: neither its HTML nor any websocket frame it received names the other cell's
run id, the group id, the other prompt or the other video's URL. The app has a passcode, so the viewer is
truly anonymous.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from lib.contract import VideoRequest
from lib.ledger import Ledger
from tests.fixtures.servers import DESKTOP, AppServer, GatewayProcess, open_app, read_ledger_rows

pytestmark = pytest.mark.e2e

PASSCODE = "a long enough passcode, e2e"
MINE = "A red kite over golden dunes, e2e cell"
OTHER = "A fox asleep in deep snow, e2e other cell"


def _wait_archived(db: Path, n: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = read_ledger_rows(db) if db.exists() else []
        if len(rows) == n and all(r["video_path"] for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"the grid was not archived in time: {rows}")


def _frames(page: Any) -> list[bytes]:
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(
        p.encode() if isinstance(p, str) else bytes(p))))
    return frames


def test_a_cell_link_reveals_nothing_of_the_rest_of_its_grid(tmp_path: Path, browser: Any) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"PLAYGROUND_PASSCODE": PASSCODE}).start()
    try:
        warm = browser.new_context(viewport=DESKTOP)
        open_app(warm.new_page(), app.url)  # the first page view starts the app's worker
        warm.close()
        led = Ledger(f"sqlite:///{app.db_path}")
        gid = Ledger.new_id()
        mine, other = Ledger.new_id(), Ledger.new_id()
        for run_id, prompt, label in ((mine, MINE, "Prompt 1 · std"), (other, OTHER, "Prompt 2 · std")):
            led.create_run(run_id, VideoRequest(prompt=prompt, mode="std", duration=5, aspect_ratio="16:9"),
                           0.184, group_id=gid, label=label, source="compare")
        led.close()
        _wait_archived(app.db_path, 2)

        grid_ctx = browser.new_context(viewport=DESKTOP)
        try:
            grid = grid_ctx.new_page()
            open_app(grid, f"{app.url}/run?group={gid}")
            for run_id in (mine, other):  # each cell plays its own archived copy in the synced grid
                expect(grid.locator(f".st-key-share_cell_{run_id} video[data-sp-video=cell]")).to_have_count(
                    1, timeout=20_000)
            srcs = {run_id: grid.locator(f".st-key-share_cell_{run_id} video[data-sp-video=cell]")
                    .evaluate("v => new URL(v.src).pathname") for run_id in (mine, other)}
        finally:
            grid_ctx.close()
        assert all(srcs.values()) and srcs[mine] != srcs[other], srcs

        stranger = browser.new_context(viewport=DESKTOP)
        try:
            page = stranger.new_page()
            frames = _frames(page)
            open_app(page, f"{app.url}/run?id={mine}")
            expect(page.get_by_role("heading", name="Shared run")).to_be_visible()
            video = page.locator("[data-testid='stVideo']")
            expect(video).to_have_count(1, timeout=20_000)
            assert video.evaluate("v => new URL(v.src).pathname") == srcs[mine]
            expect(page.get_by_text(MINE).first).to_be_visible()
            page.wait_for_timeout(1500)  # a live tick or two: whatever the page sends later counts too
            html = page.content()
            received = b"".join(frames)
            # The cell's own id may contain anything (it is random here); look for the others elsewhere.
            html_rest = html.replace(mine, "")
            frames_rest = received.replace(mine.encode(), b"")
            other_src = srcs[other] or ""
            for leak in (other, gid, OTHER, other_src, other_src.rsplit("/", 1)[-1]):
                assert leak not in html_rest, f"the page shows {leak!r}"
                assert leak.encode() not in frames_rest, f"the websocket carried {leak!r}"
            assert "group=" not in html
            assert page.locator(f"a[href*='{gid}']").count() == 0
        finally:
            stranger.close()
    finally:
        app.stop()
        gateway.stop()
