"""Demo links against `streamlit run app.py`: what a link-preview bot reads, and what a person sees.

One app server for the module, with a fake TOAPIS key pointed at a local gateway process (which accepts
any bearer), so the key is really in the app's environment. Two single runs and a two-cell grid are
written to its ledger as drafts; the app's own worker sends and archives them. Then:

- a bot's plain GET (Slackbot's User-Agent, no JavaScript) of `/s/<id>`, parsed with html.parser: every
  tag's content, the poster (200, image/*) and the video by range (206, video/mp4), the embed page's
  video; neither page holds the key, the other run's prompt or id, a price, a task id, the gateway's
  address or the ledger's path; hostile ids and a hostile Host header get words, never a tag;
- Chromium: the embed page inside an iframe on another site's page plays (its time advances), and the
  short link opens the share view; screenshots of the embed page at desktop and phone width.
"""
from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from lib.contract import VideoRequest
from lib.ledger import Ledger
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
from tests.unit.test_unfurl import BOT, HOSTILE_IDS, Page

pytestmark = pytest.mark.e2e

KEY = "tk-live-UNFURLSECRET-5150"
MINE = 'A red kite over golden dunes at dawn, "slow" dolly <in> & out, e2e unfurl'
OTHER = "SECRET OTHER RUN: a fox asleep in deep snow, e2e unfurl"
GRID = "A lighthouse in a storm, e2e unfurl grid"
_PRINTABLE = "".join(chr(i) for i in range(33, 127))

PLAY = """async (v) => {
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  v.muted = true;
  try { await v.play(); } catch (e) { return {error: String(e)}; }
  const t0 = v.currentTime, start = performance.now();
  const moving = () => v.currentTime > t0 + 0.3 && v.readyState >= 2;
  while (performance.now() - start < 20000 && !moving()) await sleep(50);
  return {readyState: v.readyState, t0: t0, t1: v.currentTime, src: v.currentSrc,
          error: v.error && v.error.code};
}"""


def _wait_archived(db: Path, n: int, timeout: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = read_ledger_rows(db) if db.exists() else []
        if len(rows) == n and all(r["video_path"] for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"the runs were not archived in time: {rows}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("unfurl")
    gateway = GatewayProcess(tmp / "gateway").start()
    app = AppServer(tmp / "app", gateway, {"TOAPIS_API_KEY": KEY}).start()
    try:
        warm = browser.new_context(viewport=DESKTOP)
        open_app(warm.new_page(), app.url)  # the first page view starts the app's worker
        warm.close()
        led = Ledger(f"sqlite:///{app.db_path}")
        mine, other, gid = Ledger.new_id(), Ledger.new_id(), Ledger.new_id()
        led.create_run(mine, VideoRequest(prompt=MINE, mode="std", duration=5, aspect_ratio="16:9"), 0.184)
        led.create_run(other, VideoRequest(prompt=OTHER, mode="pro", duration=5, aspect_ratio="9:16"), 0.3125)
        for mode in ("std", "pro"):
            led.create_run(Ledger.new_id(), VideoRequest(prompt=GRID, mode=mode, duration=5,
                                                         aspect_ratio="1:1"),
                           0.184, group_id=gid, label=mode, source="compare")
        led.close()
        rows = {r["run_id"]: r for r in _wait_archived(app.db_path, 4)}
        yield {"app": app, "gateway": gateway, "mine": mine, "other": other, "gid": gid, "rows": rows}
    finally:
        app.stop()
        gateway.stop()


def bot_get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers={"User-Agent": BOT, **headers}, timeout=30, allow_redirects=False)


@contextlib.contextmanager
def other_site(body: str) -> Iterator[str]:
    """A page of another origin (its own port on 127.0.0.1: Chromium keeps a public page from framing a
    loopback one, so the other site is local too), answering every GET with `body`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def raw_get(port: int, path: str) -> tuple[int, str]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # spaces and non-ASCII percent-encoded (a request line cannot carry them); all else as given
        con.putrequest("GET", quote(path, safe=_PRINTABLE), skip_accept_encoding=True)
        con.putheader("User-Agent", BOT)
        con.endheaders()
        resp = con.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        con.close()


def private_bits(demo: dict[str, Any]) -> list[str]:
    other = demo["rows"][demo["other"]]
    bits = [KEY, OTHER, demo["other"], other["video_path"], other["poster_path"], "$", "0.18", "0.31",
            demo["gateway"].url, "gateway", str(demo["app"].db_path), str(demo["app"].data_dir), "ledger"]
    for row in demo["rows"].values():
        bits += [row["task_id"], row["video_url"] or "unset"]
    return bits


def test_a_bot_reads_every_tag_and_the_files_answer(demo: dict[str, Any]) -> None:
    app, mine = demo["app"], demo["mine"]
    row = demo["rows"][mine]
    r = bot_get(f"{app.url}/s/{mine}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers[
        "content-security-policy"]
    page = Page(r.text)
    escaped_title = 'A red kite over golden dunes at dawn, "slow" dolly <in> & out, e2e unfurl'
    assert page.one("og:title") == page.one("twitter:title") == escaped_title
    assert "<in>" not in r.text and "&lt;in&gt;" in r.text
    assert page.one("og:description") == page.one("twitter:description") == (
        "A 5-second 16:9 landscape video in std quality (720p), made with kling-v3.")
    assert page.one("og:type") == "video.other" and page.one("og:site_name") == "kling-v3 playground"
    assert page.one("og:url") == f"{app.url}/s/{mine}"
    assert page.one("og:image") == page.one("twitter:image") == f"{app.url}/archive/{row['poster_path']}"
    assert page.one("og:image:type") == "image/jpeg"
    assert page.one("og:video") == f"{app.url}/archive/{row['video_path']}"
    assert "og:video:secure_url" not in page.meta and page.one("twitter:card") == "summary_large_image"
    assert (page.one("og:video:type"), page.one("og:video:width"), page.one("og:video:height")) == (
        "video/mp4", "1280", "720")
    assert page.refresh == f"0; url=/run?id={mine}" and f"/run?id={mine}" in page.links and page.scripts == 0

    image = requests.get(page.one("og:image"), timeout=30)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert image.content[:3] == b"\xff\xd8\xff"
    video = requests.get(page.one("og:video"), headers={"Range": "bytes=0-1023"}, timeout=30)
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp" and len(video.content) == 1024

    embed = bot_get(f"{app.url}/e/{mine}")
    assert embed.status_code == 200 and "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers and embed.headers["x-content-type-options"] == "nosniff"
    (tag,) = Page(embed.text).videos
    assert tag["src"] == f"/archive/{row['video_path']}" and tag["poster"] == f"/archive/{row['poster_path']}"
    played = requests.get(app.url + str(tag["src"]), headers={"Range": "bytes=100-"}, timeout=30)
    assert played.status_code == 206 and played.headers["content-type"] == "video/mp4"

    for text in (r.text, embed.text):
        for leak in private_bits(demo):
            assert leak not in text, f"a demo page shows {leak!r}"


def test_a_grid_link_and_hostile_requests(demo: dict[str, Any]) -> None:
    app, gid = demo["app"], demo["gid"]
    page = Page(bot_get(f"{app.url}/s/{gid}").text)
    assert page.one("og:title") == f"Comparison: {GRID}"
    assert page.one("og:description") == ("2 runs side by side: std (720p) vs pro (1080p) · 5 s · "
                                          "1:1 square. 2 of 2 ready to play.")
    assert requests.get(page.one("og:image"), timeout=30).headers["content-type"].startswith("image/")
    assert page.refresh == f"0; url=/run?group={gid}"
    for prefix in ("/s/", "/e/"):
        for ident in [*HOSTILE_IDS, Ledger.new_id()]:
            status, text = raw_get(app.port, prefix + ident)  # the path exactly as given, not normalised
            assert status in (400, 404), (prefix, ident, status)
            assert "Traceback" not in text and "<script" not in text.lower(), (prefix, ident)
            for leak in (KEY, MINE, OTHER, demo["mine"]):
                assert leak not in text
    # a Host header that is not a plain host name never reaches a tag (uvicorn or the route refuses it)
    r = bot_get(f"{app.url}/s/{demo['mine']}", Host='evil.example"><script>alert(1)</script>')
    assert r.status_code == 400 and "<script" not in r.text and "og:" not in r.text


def test_the_embed_plays_inside_another_sites_iframe_and_the_short_link_opens_the_share_view(
        demo: dict[str, Any], browser: Any) -> None:
    app, mine = demo["app"], demo["mine"]
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = ctx.new_page()
        slides = (f'<!doctype html><title>Slides</title><h1>Our demo</h1>'
                  f'<iframe src="{app.url}/e/{mine}" width="480" height="270" style="border:0"></iframe>')
        with other_site(slides) as site:  # another origin (another port) that embeds the player
            page.goto(f"{site}/slides")
            page.wait_for_load_state()
        frame = page.frame_locator("iframe")
        video = frame.locator("video")
        expect(video).to_have_count(1, timeout=20_000)
        played = video.evaluate(PLAY)
        assert played.get("error") is None and played["readyState"] >= 2, played
        assert played["t1"] > played["t0"] + 0.3, played
        assert played["src"] == f"{app.url}/archive/{demo['rows'][mine]['video_path']}"
        box = page.locator("iframe").bounding_box()
        inner = video.bounding_box()
        assert box and inner and abs(inner["width"] - box["width"]) < 2, (box, inner)  # fills the frame
        assert abs(inner["height"] - box["height"]) < 2, (box, inner)
        expect(frame.get_by_role("link", name="Open in the playground")).to_have_attribute(
            "href", f"/run?id={mine}")
        screenshot(page, "unfurl-embed-in-another-site")

        person = ctx.new_page()
        person.goto(f"{app.url}/s/{mine}")
        person.wait_for_url(f"{app.url}/run?id={mine}", timeout=20_000)
        wait_for_app(person)
        expect(person.get_by_role("heading", name="Shared run")).to_be_visible()
        expect(person.locator("[data-testid='stVideo']")).to_have_count(1, timeout=20_000)
        person.get_by_role("button", name="Share").click()
        expect(person.get_by_text(f"{app.url}/s/{mine}").first).to_be_visible(timeout=10_000)
        expect(person.get_by_text(f'<iframe src="{app.url}/e/{mine}"').first).to_be_visible()
        screenshot(person, "unfurl-share-popover-desktop")
    finally:
        ctx.close()


@pytest.mark.parametrize("viewport, name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_embed_page_screenshots(demo: dict[str, Any], browser: Any, viewport: dict, name: str) -> None:
    ctx = browser.new_context(viewport=viewport)
    try:
        page = ctx.new_page()
        page.goto(f"{demo['app'].url}/e/{demo['mine']}")
        video = page.locator("video")
        video.evaluate("v => new Promise(r => v.readyState >= 1 ? r() "
                       ": v.addEventListener('loadedmetadata', r))")
        box = video.bounding_box()  # the largest 16:9 box that fits, centred: the controls sit on it
        assert box and abs(box["width"] / box["height"] - 16 / 9) < 0.01, box
        assert min(viewport["width"] - box["width"], viewport["height"] - box["height"]) < 1, box
        assert abs(box["x"] * 2 + box["width"] - viewport["width"]) < 2, box
        assert abs(box["y"] * 2 + box["height"] - viewport["height"]) < 2, box
        screenshot(page, f"unfurl-embed-{name}")
    finally:
        ctx.close()
