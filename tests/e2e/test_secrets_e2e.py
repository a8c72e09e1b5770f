"""The key never leaves the server, user text is never markup, and a passcode guards all but share links.

The app runs with a distinctive fake key (the local gateway accepts any bearer). A browser makes a run,
opens its card's share link, History and the share view, while the test records everything the browser
receives (page HTML, every websocket frame, every request URL); then it searches those, the ledger's
bytes, both servers' logs and the share link for the key.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.servers import DESKTOP, AppServer, GatewayProcess, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

KEY = "tk-live-PLAYGROUNDSECRET-4242"
PASSCODE = "otter-PASSCODE-7788"
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(1)> [click](https://evil.example) **bold**"


def passcode_field(page: Any) -> Any:
    return page.locator("input[aria-label='Passcode']")


def settle(page: Any) -> None:
    page.wait_for_timeout(400)
    wait_for_app(page)


def rows(app: AppServer) -> list[dict]:
    if not app.db_path.exists():
        return []
    con = sqlite3.connect(app.db_path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created_at")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def wait_until(what: str, check: Callable[[], Any], limit: float = 60.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {what}")


def generate(page: Any, prompt: str) -> None:
    box = page.get_by_label("Prompt", exact=True)
    box.fill(prompt)
    box.press("Tab")
    settle(page)
    page.get_by_role("button", name="Generate").click()
    settle(page)


def assert_plain_text(page: Any, where: str) -> None:
    """The hostile prompt is on the page as characters, and none of it became an element."""
    page.get_by_text("<script>alert(1)</script>").filter(visible=True).first.wait_for(timeout=15_000)
    assert page.locator("script:text-matches('alert\\\\(1\\\\)')").count() == 0, where
    assert page.locator("img[src='x']").count() == 0, where
    assert page.locator("[onerror]").count() == 0, where
    assert page.locator("a[href^='https://evil.example']").count() == 0, where
    assert "[click](https://evil.example)" in page.inner_text("body"), where


class Recorder:
    """Everything the browser receives or asks for."""

    def __init__(self, page: Any) -> None:
        self.frames: list[bytes] = []
        self.urls: list[str] = []
        self.html: list[str] = []
        self.dialogs: list[str] = []
        page.on("websocket", self._ws)
        page.on("request", lambda req: self.urls.append(req.url))
        page.on("dialog", self._dialog)

    def _ws(self, ws: Any) -> None:
        ws.on("framereceived", lambda payload: self.frames.append(
            payload.encode() if isinstance(payload, str) else bytes(payload)))
        self.urls.append(ws.url)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def snapshot(self, page: Any) -> None:
        self.html.append(page.content())


def test_the_key_never_reaches_the_browser_the_ledger_the_logs_or_a_link(
    tmp_path: Path, browser: Any
) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"TOAPIS_API_KEY": KEY}).start()
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = ctx.new_page()
        rec = Recorder(page)
        open_app(page, app.url)
        rec.snapshot(page)
        generate(page, HOSTILE)
        run = wait_until("a run", lambda: rows(app)[0] if rows(app) else None, 20)
        run_id = run["run_id"]
        wait_until("archived", lambda: rows(app)[0]["video_path"], 60)
        card = page.locator(f".st-key-card_{run_id}")
        card.locator("video").wait_for(timeout=30_000)
        assert_plain_text(page, "Compose card")
        rec.snapshot(page)

        # the card's share link (what a user copies)
        card.get_by_role("button", name="Share").click()
        page.wait_for_timeout(500)
        share_link = page.get_by_text(f"/s/{run_id}").first.inner_text().strip()
        assert share_link.endswith(f"/s/{run_id}"), share_link
        rec.snapshot(page)
        page.keyboard.press("Escape")

        # History: find it, select it, see the detail panel
        open_app(page, f"{app.url}/history")
        search = page.get_by_label("Search runs")
        search.fill(run_id)
        search.press("Enter")
        settle(page)
        page.get_by_text("1 run", exact=True).first.wait_for(timeout=15_000)
        rec.snapshot(page)
        grid = page.locator("[data-testid='stDataFrame']").first
        box = grid.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 14, box["y"] + 35 + 23)  # the row-marker cell of row 1
        settle(page)
        page.locator(".st-key-hist_detail").wait_for(timeout=15_000)
        assert_plain_text(page, "History detail")
        rec.snapshot(page)

        # the share view in a fresh context (no cookies), as a recipient opens it
        other = browser.new_context(viewport=DESKTOP)
        try:
            viewer = other.new_page()
            rec_viewer = Recorder(viewer)
            open_app(viewer, f"{app.url}/run?id={run_id}")
            viewer.locator("video").first.wait_for(timeout=30_000)
            assert_plain_text(viewer, "share view")
            rec_viewer.snapshot(viewer)
            screenshot(viewer, "secrets_share_view_hostile_prompt")
        finally:
            other.close()

        for recorder in (rec, rec_viewer):
            assert recorder.dialogs == [], f"a script ran: {recorder.dialogs}"
            assert recorder.frames, "no websocket frames were captured"
            assert all(KEY.encode() not in f for f in recorder.frames), "the key is in a websocket frame"
            assert all(KEY not in html for html in recorder.html), "the key is in the page HTML"
            assert all(KEY not in url for url in recorder.urls), "the key is in a URL the browser asked for"
        assert KEY not in share_link
        # the key was really in use: the gateway accepted the app's authenticated submit
        assert [e for e in gateway.requests("submit") if e["status"] == 200]
        ledger_bytes = b"".join(p.read_bytes() for p in app.db_path.parent.glob(app.db_path.name + "*"))
        assert ledger_bytes and KEY.encode() not in ledger_bytes, "the key is in the ledger"
        app.stop()  # flush and close the logs before reading them
        gateway.stop()
        for name, log in (("streamlit", app.log), ("gateway", gateway.log)):
            assert KEY not in log.read_text(errors="replace"), f"the key is in the {name} log"
    finally:
        ctx.close()
        app.stop()
        gateway.stop()


def test_passcode_guards_the_pages_but_not_a_share_link(tmp_path: Path, browser: Any) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"PLAYGROUND_PASSCODE": PASSCODE}).start()
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = ctx.new_page()
        rec = Recorder(page)
        for path in ("/", "/history", "/compare"):
            open_app(page, app.url + path)
            passcode_field(page).wait_for(timeout=15_000)
            assert page.get_by_role("button", name="Generate").count() == 0
            assert page.get_by_label("Search runs").count() == 0
        open_app(page, app.url)
        field = passcode_field(page)
        field.fill("wrong guess")
        field.press("Enter")
        settle(page)
        page.get_by_text("That passcode is not right.").wait_for(timeout=10_000)
        assert page.get_by_role("button", name="Generate").count() == 0
        field = passcode_field(page)
        field.fill(PASSCODE)
        field.press("Enter")
        settle(page)
        page.get_by_role("button", name="Generate").wait_for(timeout=15_000)
        generate(page, "passcode test: a paper crane unfolding")
        run_id = wait_until("a run", lambda: rows(app)[0]["run_id"] if rows(app) else None, 20)
        wait_until("archived", lambda: rows(app)[0]["video_path"], 60)
        assert all(PASSCODE.encode() not in f for f in rec.frames), "the passcode came back to the browser"
        assert all(PASSCODE not in url for url in rec.urls)

        stranger = browser.new_context(viewport=DESKTOP)
        try:
            viewer = stranger.new_page()
            open_app(viewer, f"{app.url}/run?id={run_id}")
            viewer.locator("video").first.wait_for(timeout=30_000)
            viewer.get_by_text("passcode test: a paper crane unfolding").first.wait_for(timeout=10_000)
            # the share link opens one run, not the app: other pages still ask
            open_app(viewer, f"{app.url}/history")
            passcode_field(viewer).wait_for(timeout=15_000)
        finally:
            stranger.close()
    finally:
        ctx.close()
        app.stop()
        gateway.stop()
