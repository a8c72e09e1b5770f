"""A hostile gateway against the running app, seen by an anonymous share-link holder in a fresh Chromium.

The original attack (issue 13): a gateway answered `"url": "/proc/self/environ"`, the video could not be
archived, and the share view's player read that path from the server's disk and served the process
environment (API key, passcode) to a browser with no passcode. Here `streamlit run` is pointed at a
hostile gateway (tests/fixtures/hostile.py) with a distinctive key and passcode in its environment; a run
goes through the app's own worker; a fresh browser context opens the share link. The test records every
byte the browser receives and checks that the page says what happened in words, shows no player, and
that neither secret, nor the secret internal service's answer, reaches the browser.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lib.contract import VideoRequest
from lib.ledger import Ledger
from tests.fixtures.hostile import SECRET, HostileGateway, SecretServer
from tests.fixtures.servers import DESKTOP, AppServer, read_ledger_rows, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

KEY = "tk-live-HOSTILEKEY-9153"
PASSCODE = "heron-PASSCODE-5521"


class Received:
    """Every websocket frame, response body and request URL the page gets."""

    def __init__(self, page: Any) -> None:
        self.frames: list[bytes] = []
        self.bodies: list[bytes] = []
        self.urls: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        page.on("request", lambda req: self.urls.append(req.url))
        page.on("response", self._response)

    def _frame(self, payload: Any) -> None:
        self.frames.append(payload.encode() if isinstance(payload, str) else bytes(payload))

    def _response(self, resp: Any) -> None:
        with contextlib.suppress(Exception):  # redirects and aborted media requests have no body to read
            self.bodies.append(resp.body())

    def contains(self, needle: str) -> bool:
        data = needle.encode()
        return any(data in b for b in self.frames + self.bodies) or any(needle in u for u in self.urls)


@pytest.mark.parametrize("link", ["/proc/self/environ", "{gw}/files/to-secret"],
                         ids=["server-path", "redirect-to-internal-port"])
def test_share_link_holder_gets_words_not_the_servers_environment(
    tmp_path: Path, browser: Any, hostile_gateway: HostileGateway, secret_server: SecretServer, link: str
) -> None:
    hostile_gateway.answer(video_url=link, thumbnail_url=link)
    app = AppServer(tmp_path / "app", hostile_gateway,  # type: ignore[arg-type] - anything with .url
                    extra_env={"TOAPIS_API_KEY": KEY, "PLAYGROUND_PASSCODE": PASSCODE})
    app.data_dir.mkdir(parents=True, exist_ok=True)
    led = Ledger(f"sqlite:///{app.db_path}")
    run_id = Ledger.new_id()
    led.create_run(run_id, VideoRequest(prompt="a heron in the reeds", aspect_ratio="16:9"), 0.37)
    led.close()
    app.start()
    ctx = browser.new_context(viewport=DESKTOP)  # fresh: no cookies, no passcode
    try:
        page = ctx.new_page()
        got = Received(page)
        page.goto(f"{app.url}/run?id={run_id}")  # the first page view also starts the worker
        wait_for_app(page)
        deadline = time.monotonic() + 60
        row: dict = {}
        while time.monotonic() < deadline:
            row = next((r for r in read_ledger_rows(app.db_path) if r["run_id"] == run_id), {})
            if row.get("error_code"):
                break
            time.sleep(0.25)
        assert row.get("error_code") == "bad_url", row
        page.reload()
        wait_for_app(page)
        page.get_by_text("so it was not fetched", exact=False).or_(
            page.get_by_text("never opened it", exact=False)).first.wait_for(timeout=20_000)
        body = page.inner_text("body")
        assert ("never opened it" in body) or ("not fetched" in body), body[-1500:]
        assert page.locator("video").count() == 0
        served = [u for u in got.urls if urlsplit(u).path.startswith("/media/")]  # Streamlit's file server
        assert served == [], served
        screenshot(page, f"hostile-share-{'path' if link.startswith('/') else 'redirect'}")
        for secret in (KEY, PASSCODE, SECRET):
            assert not got.contains(secret), f"{secret} reached the browser"
        assert secret_server.connections == 0
        assert hostile_gateway.requests[0] == ("POST", "/v1/videos/generations")  # it really was the gateway
    finally:
        ctx.close()
        app.stop()
