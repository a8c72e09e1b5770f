"""The archive outside the checkout, served by the app's own route, in headless Debian Chromium.

`PLAYGROUND_ARCHIVE` points at a folder in the test's temporary directory (with a space in its name,
like a mounted disk), far from the repository. A run made on Compose must say "Saving…" (no player)
until it is archived, then play from `/archive/videos/<token>` on its card, in History's detail panel and
on its share link in a fresh browser context: the video element reaches readyState >= 2, its time
advances, and a seek lands (HTTP Range). The card never showed any other source. The same server is
then probed over plain HTTP as an attacker would: unknown tokens, escapes, listings, CORS.
"""
from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.fixtures.servers import (
    DESKTOP,
    ROOT,
    AppServer,
    GatewayProcess,
    open_app,
    read_ledger_rows,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

PROMPT = "A red kite over a grey beach, archive e2e"
ROW_HEIGHT = 46  # lib/ui/history_view.ROW_HEIGHT
HEADER = 35
TOKEN_SRC = r"/archive/videos/([A-Za-z0-9_-]{24})\.mp4$"

# Plays a <video> muted, waits until its time advances, then seeks to 2 s and waits for it to land.
PLAY = """async (v) => {
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  v.muted = true;
  try { await v.play(); } catch (e) { return {error: String(e)}; }
  const t0 = v.currentTime, start = performance.now();
  const moving = () => v.currentTime > t0 + 0.3 && v.readyState >= 2;
  while (performance.now() - start < 15000 && !moving()) await sleep(50);
  const played = {readyState: v.readyState, t0: t0, t1: v.currentTime};
  v.pause();
  const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
  v.currentTime = 2.0;
  await Promise.race([seeked, sleep(10000)]);
  return {...played, seekedTo: v.currentTime, error: v.error ? v.error.code : null, src: v.currentSrc};
}"""

# Records every src any <video> in a run card ever had (attribute changes and inserted elements).
RECORD_SOURCES = """() => {
  window.__cardSources = [];
  const note = (v) => { if (v.getAttribute('src')) window.__cardSources.push(v.getAttribute('src')); };
  const inCard = (el) => el.closest && el.closest('[class*="st-key-card_"]');
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes' && m.target.tagName === 'VIDEO' && inCard(m.target)) note(m.target);
      for (const n of m.addedNodes || []) {
        if (n.nodeType !== 1) continue;
        const vids = n.tagName === 'VIDEO' ? [n] : Array.from(n.querySelectorAll('video'));
        for (const v of vids) if (inCard(v)) note(v);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "mounted disk" / "kling archive"
    assert ROOT not in folder.parents
    return folder


@pytest.fixture
def app(tmp_path: Path, gateway_process: GatewayProcess, elsewhere: Path) -> Iterator[AppServer]:
    server = AppServer(tmp_path / "app", gateway_process,
                       extra_env={"PLAYGROUND_ARCHIVE": str(elsewhere)}).start()
    yield server
    server.stop()


def _played(result: dict) -> None:
    assert result.get("error") is None, result
    assert result["readyState"] >= 2 and result["t1"] > result["t0"] + 0.25, result
    assert abs(result["seekedTo"] - 2.0) < 0.3, result


def _raw_status(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        con.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            con.putheader(k, v)
        con.endheaders()
        resp = con.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(2000)
    finally:
        con.close()


def test_an_archive_outside_the_checkout_plays_everywhere(app: AppServer, browser: Any, page: Any,
                                                          elsewhere: Path) -> None:
    # hold the archive download for 3 s, so the "completed, not archived yet" window can be seen
    app.gateway.control("faults", endpoint="file", mode="delay", delay=3.0, count=1)
    open_app(page, app.url)
    page.evaluate(RECORD_SOURCES)
    box = page.locator(".st-key-compose_prompt textarea")
    box.fill(PROMPT)
    box.press("Tab")  # a text area commits its value on blur: press once the page has it, as a person does
    wait_for_app(page)
    page.locator(".st-key-compose_generate button").click()
    deadline = time.monotonic() + 30
    while not (runs := read_ledger_rows(app.db_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runs, "no run in the ledger 30 s after Generate"
    run_id = runs[0]["run_id"]
    card = page.locator(f".st-key-card_{run_id}")

    # completed, archive download held: "Saving…", and no player at all
    expect(card.get_by_text("Saving…")).to_be_visible(timeout=90_000)
    assert card.locator("video").count() == 0
    screenshot(page, "archive-saving")

    video = card.locator("video")
    expect(video).to_have_attribute("src", re.compile(re.escape(app.url) + TOKEN_SRC), timeout=60_000)
    src = video.get_attribute("src") or ""
    token = re.search(TOKEN_SRC, src).group(1)
    assert run_id not in src and token != run_id
    row = read_ledger_rows(app.db_path)[0]
    assert row["video_path"] == f"videos/{token}.mp4"
    assert (elsewhere / row["video_path"]).is_file() and (elsewhere / row["poster_path"]).is_file()
    assert not (ROOT / "data" / "archive" / row["video_path"]).exists()
    _played(video.evaluate(PLAY))
    assert set(page.evaluate("window.__cardSources")) == {src}, "the card showed another source"
    screenshot(page, "archive-card-playing")

    # History: the detail panel plays the same file
    open_app(page, f"{app.url}/history")
    grid = page.locator(".st-key-hist_table, [data-testid='stDataFrame']").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box, "the history table is not on the page"
    page.mouse.click(box["x"] + 16, box["y"] + HEADER + ROW_HEIGHT / 2)
    detail = page.locator(".st-key-hist_detail video")
    expect(detail).to_have_attribute("src", src, timeout=20_000)
    _played(detail.evaluate(PLAY))

    # the share link, in a fresh context with no cookies or session
    fresh = browser.new_context(viewport=DESKTOP)
    try:
        shared = fresh.new_page()
        open_app(shared, f"{app.url}/run?id={run_id}")
        sv = shared.locator(".st-key-share_run video")
        expect(sv).to_have_attribute("src", src, timeout=20_000)
        _played(sv.evaluate(PLAY))
        wait_for_app(shared)
        screenshot(shared, "archive-share-playing")
    finally:
        fresh.close()

    # the route itself, as anyone on the network sees it
    path = src.removeprefix(app.url)
    full = requests.get(src, headers={"Origin": "https://evil.example"}, timeout=10)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert len(full.content) == (elsewhere / row["video_path"]).stat().st_size
    assert "access-control-allow-origin" not in {k.lower() for k in full.headers}
    assert "immutable" in full.headers["cache-control"] and full.headers["etag"]
    part = requests.get(src, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert requests.get(src, headers={"If-None-Match": full.headers["etag"]}, timeout=10).status_code == 304
    poster = requests.get(f"{app.url}/archive/{row['poster_path']}", timeout=10)
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    for probe in (f"/archive/videos/{run_id}.mp4", "/archive/videos/AAAAAAAAAAAAAAAAAAAAAAAA.mp4",
                  "/archive/", "/archive/videos/", "/archive/posters", path.replace(".mp4", ".jpg")):
        status, _, body = _raw_status(app.url, probe)
        assert status == 404 and body == b"Not found.", (probe, status)
    for escape in ("/archive/videos/../../app/ledger.db", "/archive/videos/..%2F..%2Fapp%2Fledger.db",
                   "/archive/%2e%2e/%2e%2e/app/ledger.db", "/archive/videos/..%5c..%5capp%5cledger.db"):
        status, _, body = _raw_status(app.url, escape)
        assert status in (400, 404) and b"SQLite" not in body, (escape, status)
