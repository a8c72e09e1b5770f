"""Demo links (lib/unfurl.py, lib/unfurl_route.py) over real HTTP: uvicorn serving the archive route and
the demo link routes, a real SQLite ledger and a real archive folder. Pages are read the way a link-preview
bot reads them (one GET, no JavaScript) and parsed with html.parser. tests/e2e/test_unfurl_e2e.py repeats
the essentials against `streamlit run app.py` with a run the app's own worker archived.
"""
from __future__ import annotations

import html
import http.client
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from lib import archive_route, unfurl, unfurl_route
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from lib.storage import LocalFolder
from tests.fixtures.servers import free_port
from tests.unit.test_archive_route import Server as _ArchiveServer

BOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
PROMPT = 'A "red" kite <b>over</b> & under a grey beach at dawn, gulls wheeling, slow dolly in, ' \
         "film grain, long shadows, the tide going out and out and out"
OTHER = "SECRET OTHER RUN: a fox asleep in deep snow"
HOSTILE_IDS = ["../../etc/passwd", "..%2F..%2Fledger.db", "%2e%2e", "short", "a" * 65, "x" * 5000,
               "ünïcödé-id-1234", "abc%00defghij", "abcdefgh%0a", "abcdefgh.mp4", "%3Cscript%3E12345678",
               "abcdefgh/../../x", "' OR 1=1 --"]


class Page(HTMLParser):
    """What a bot reads: <meta> tags by property/name, the title, links, the <video>, the refresh."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.title = ""
        self.links: list[str] = []
        self.videos: list[dict[str, str | None]] = []
        self.refresh: str | None = None
        self.scripts = 0
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and (a.get("property") or a.get("name")):
            self.meta.setdefault(str(a.get("property") or a.get("name")), []).append(str(a.get("content")))
        elif tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = a.get("content")
        elif tag == "a":
            self.links.append(str(a.get("href")))
        elif tag == "video":
            self.videos.append(a)
        elif tag == "script":
            self.scripts += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def one(self, name: str) -> str:
        values = self.meta.get(name, [])
        assert len(values) == 1, f"{name}: {values}"
        return values[0]


class Server(_ArchiveServer):
    """The archive route's test server (its start, stop and raw requests), serving the demo links too."""

    def __init__(self, ledger: Any, archive: Path, public_url: str | None = None) -> None:
        self.port = free_port()
        routes = (archive_route.make_routes(lambda: LocalFolder(archive))
                  + unfurl_route.make_routes(ledger, public_url=lambda: public_url))
        config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def with_host(self, path: str, host: str) -> tuple[int, dict[str, str], str]:
        """One GET whose only Host header is `host`, exactly as given."""
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            con.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            con.putheader("Host", host.encode("utf-8"))
            con.putheader("User-Agent", BOT)
            con.endheaders()
            resp = con.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
        finally:
            con.close()


def seed(ledger: Ledger, prompt: str, *, state: str = "completed", video: str | None = None,
         poster: str | None = None, mode: str = "std", aspect: str = "16:9", group_id: str | None = None,
         **cols: Any) -> str:
    run_id = Ledger.new_id()
    now = time.time() - 60
    row = run_row(run_id, VideoRequest(prompt=prompt, mode=mode, duration=5, aspect_ratio=aspect), 0.184,
                  now=now, state=state, group_id=group_id, task_id=f"task_{run_id[:12]}")
    row.update(submitted_at=now + 1, next_poll_at=None, video_url="https://gw.example/files/v.mp4?sig=X")
    if state == "completed":
        row.update(completed_at=now + 20)
    if video:
        row.update(video_path=f"videos/{video}.mp4", poster_path=poster and f"posters/{poster}.jpg",
                   archived_at=now + 25)
    row.update(cols)
    bulk_insert(ledger, [row])
    return run_id


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    (root / "videos").mkdir(parents=True)
    (root / "posters").mkdir()
    for token in ("KiteVideoToken_0123456789", "FoxVideoToken_01234567890"):
        (root / "videos" / f"{token}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
        (root / "posters" / f"{token}.jpg").write_bytes(b"\xff\xd8\xff poster")
    return root


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.close()


@pytest.fixture
def server(ledger: Ledger, archive: Path) -> Iterator[Server]:
    with Server(lambda: ledger, archive) as srv:
        yield srv


def get(srv: Server, path: str, **headers: str) -> requests.Response:
    return requests.get(srv.url + path, headers={"User-Agent": BOT, **headers}, timeout=10,
                        allow_redirects=False)


def test_a_ready_run_unfurls_with_every_tag(server: Server, ledger: Ledger) -> None:
    token = "KiteVideoToken_0123456789"
    rid = seed(ledger, PROMPT, video=token, poster=token, mode="pro", aspect="9:16")
    other = seed(ledger, OTHER, video="FoxVideoToken_01234567890", poster="FoxVideoToken_01234567890")
    r = get(server, f"/s/{rid}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = Page(r.text)
    base = server.url
    title = page.one("og:title")
    assert title.startswith('A "red" kite <b>over</b> & under') and title.endswith("…") and len(title) <= 90
    assert "<b>" not in r.text and "&lt;b&gt;" in r.text and "&quot;red&quot;" in r.text  # escaped
    assert page.one("og:description") == ("A 5-second 9:16 portrait video in pro quality (1080p), made "
                                          "with kling-v3.")
    assert page.one("og:type") == "video.other"
    assert page.one("og:url") == f"{base}/s/{rid}"
    assert page.one("og:image") == f"{base}/archive/posters/{token}.jpg"
    assert page.one("og:image:type") == "image/jpeg"
    assert page.one("og:video") == f"{base}/archive/videos/{token}.mp4"
    assert "og:video:secure_url" not in page.meta  # plain http here
    assert (page.one("og:video:type"), page.one("og:video:width"), page.one("og:video:height")) == (
        "video/mp4", "1080", "1920")
    assert page.one("twitter:card") == "summary_large_image"  # a player card needs https
    assert page.one("twitter:title") == title and page.one("twitter:image") == page.one("og:image")
    assert page.refresh == f"0; url=/run?id={rid}" and f"/run?id={rid}" in page.links
    assert page.title == f"{title} · {unfurl.SITE_NAME}" and page.scripts == 0
    for name, value in (("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"),
                        ("x-frame-options", "DENY"), ("cache-control", "no-store")):
        assert r.headers[name] == value
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # the tags' URLs answer: the poster (image/*) and the video by range (206, video/mp4)
    img = requests.get(page.one("og:image"), timeout=10)
    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
    vid = requests.get(page.one("og:video"), headers={"Range": "bytes=0-99"}, timeout=10)
    assert vid.status_code == 206 and vid.headers["content-type"] == "video/mp4" and len(vid.content) == 100
    for leak in (OTHER, other, "0.18", "$", "task_", "gw.example", "sig=X", "ledger.db"):
        assert leak not in r.text, leak


def test_behind_https_a_player_card_and_a_secure_video_url(server: Server, ledger: Ledger) -> None:
    token = "KiteVideoToken_0123456789"
    rid = seed(ledger, "a kite", video=token, poster=token)
    # uvicorn takes the scheme from X-Forwarded-Proto of a proxy on 127.0.0.1 (its default trust)
    page = Page(get(server, f"/s/{rid}", **{"X-Forwarded-Proto": "https"}).text)
    https = server.url.replace("http://", "https://")
    assert page.one("og:video:secure_url") == page.one("og:video") == f"{https}/archive/videos/{token}.mp4"
    assert page.one("twitter:card") == "player"
    assert page.one("twitter:player") == f"{https}/e/{rid}"
    assert (page.one("twitter:player:width"), page.one("twitter:player:height")) == ("640", "360")


def test_the_embed_page_is_a_bare_player_that_may_be_framed(server: Server, ledger: Ledger) -> None:
    token = "KiteVideoToken_0123456789"
    rid = seed(ledger, PROMPT, video=token, poster=token)
    r = get(server, f"/e/{rid}")
    assert r.status_code == 200
    page = Page(r.text)
    (video,) = page.videos
    assert video["src"] == f"/archive/videos/{token}.mp4"
    assert video["poster"] == f"/archive/posters/{token}.jpg"
    assert "controls" in video and "playsinline" in video
    assert page.links == [f"/run?id={rid}"] and page.scripts == 0
    assert "frame-ancestors *" in r.headers["content-security-policy"]
    assert "x-frame-options" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
    part = requests.get(server.url + str(video["src"]), headers={"Range": "bytes=0-9"}, timeout=10)
    assert part.status_code == 206 and part.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("state, words", [("in_progress", "Not ready yet"), ("queued", "Not ready yet"),
                                          ("completed", "Not ready yet"), ("failed", "failed, so there is"),
                                          ("timed_out", "timed out, so there is"),
                                          ("unknown", "unknown outcome")])
def test_a_run_without_a_saved_video_says_so_and_offers_no_video(server: Server, ledger: Ledger, state: str,
                                                                  words: str) -> None:
    rid = seed(ledger, "a lighthouse at dusk", state=state)  # completed, not archived yet: being saved
    link, embed = get(server, f"/s/{rid}"), get(server, f"/e/{rid}")
    assert link.status_code == embed.status_code == 200
    page = Page(link.text)
    assert page.one("og:title") == "a lighthouse at dusk" and words in page.one("og:description")
    assert not [k for k in page.meta if k.startswith(("og:video", "og:image", "twitter:player"))]
    assert page.one("twitter:card") == "summary"
    assert not Page(embed.text).videos and words in embed.text and f"/run?id={rid}" in embed.text


def test_a_grid_unfurls_with_its_prompt_and_first_ready_poster(server: Server, ledger: Ledger) -> None:
    gid = Ledger.new_id()
    token = "KiteVideoToken_0123456789"
    seed(ledger, "a kite", mode="std", group_id=gid, state="in_progress")
    seed(ledger, "a kite", mode="pro", group_id=gid, video=token, poster=token)
    page = Page(get(server, f"/s/{gid}").text)
    assert page.one("og:title") == "Comparison: a kite"
    assert page.one("og:description") == ("2 runs side by side: std (720p) vs pro (1080p) · 5 s · "
                                          "16:9 landscape. 1 of 2 ready to play.")
    assert page.one("og:image").endswith(f"/archive/posters/{token}.jpg") and "og:video" not in page.meta
    assert page.refresh == f"0; url=/run?group={gid}"
    assert get(server, f"/e/{gid}").status_code == 404  # a grid has no single video to embed


@pytest.mark.parametrize("ident", HOSTILE_IDS)
@pytest.mark.parametrize("prefix", ["/s/", "/e/"])
def test_unknown_and_hostile_ids_get_the_same_words_and_no_lookup(archive: Path, ledger: Ledger, prefix: str,
                                                                  ident: str) -> None:
    looked: list[str] = []

    class Counting:  # the real ledger, counting lookups
        def get(self, run_id: str) -> Any:
            looked.append(run_id)
            return ledger.get(run_id)

        def group(self, group_id: str) -> Any:
            looked.append(group_id)
            return ledger.group(group_id)

        def sequence(self, sequence_id: str) -> Any:
            looked.append(sequence_id)
            return ledger.sequence(sequence_id)

    with Server(Counting, archive) as srv:
        r = get(srv, prefix + ident)
        unknown = get(srv, prefix + Ledger.new_id())
    assert r.status_code in (404, 400), r.status_code
    assert "Traceback" not in r.text and "<script" not in r.text.lower()
    if r.status_code == 404 and r.headers["content-type"].startswith("text/html"):
        assert unfurl.NOT_FOUND in r.text and r.headers["x-content-type-options"] == "nosniff"
    assert unknown.status_code == 404 and unfurl.NOT_FOUND in unknown.text
    assert len(looked) <= 3  # only the well-formed unknown id was looked up (run, grid, then sequence)


def test_host_header_injection_never_reaches_a_tag(server: Server, ledger: Ledger, archive: Path) -> None:
    token = "KiteVideoToken_0123456789"
    rid = seed(ledger, "a kite", video=token, poster=token)
    reached: list[str] = []
    for host in ('evil.example"><script>alert(1)</script>', "evil.example/x", "u@evil.example",
                 "evil.example:99999", "évil.example", "[::1", "x" * 300, "evil.example:80:80"):
        status, headers, text = server.with_host(f"/s/{rid}", host)
        if status == 400 and not headers.get("content-type", "").startswith("text/html"):
            continue  # uvicorn refused the request itself (a Host it cannot parse): nothing reached a tag
        reached.append(host)
        assert status == 400 and html.escape(unfurl_route.BAD_HOST) in text, (host, status, text)
        assert "script" not in text and "evil" not in text and "og:" not in text, (host, text)
    assert len(reached) >= 6, reached  # the route itself refused them (not only the HTTP parser)
    # a well-formed foreign name is that one answer's own business: never cached, and pinnable
    status, headers, text = server.with_host(f"/s/{rid}", "evil.example")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert Page(text).one("og:video") == f"http://evil.example/archive/videos/{token}.mp4"
    with Server(lambda: ledger, archive, public_url="https://play.example.com") as pinned:
        status, headers, text = pinned.with_host(f"/s/{rid}", "evil.example")
    page = Page(text)
    assert page.one("og:video") == f"https://play.example.com/archive/videos/{token}.mp4"
    assert "evil" not in text and page.one("twitter:player") == f"https://play.example.com/e/{rid}"


def test_a_ledger_that_cannot_be_read_answers_in_words(archive: Path) -> None:
    def broken() -> Any:
        raise OSError("disk on fire at /secret/path/ledger.db")

    with Server(broken, archive) as srv:
        r = get(srv, f"/s/{Ledger.new_id()}")
    assert r.status_code == 503 and html.escape(unfurl_route.UNAVAILABLE) in r.text
    assert "/secret" not in r.text and "fire" not in r.text


@pytest.mark.parametrize("host, origin", [
    ("play.example.com", "https://play.example.com"), ("127.0.0.1:8501", "https://127.0.0.1:8501"),
    ("[::1]:8080", "https://[::1]:8080"), ("Play.Example.COM.", "https://play.example.com."),
    ("evil.example\"", None), ("evil.example:", None), ("evil.example:0", None), ("a/b", None),
    ("user@host", None), ("ex ample", None), ("", None), (None, None), ("[::1]x", None), ("ho\u0430st", None),
    ("-bad.example", None), ("a" * 64 + ".example", None)])
def test_only_a_plain_host_becomes_an_origin(host: str | None, origin: str | None) -> None:
    assert unfurl.origin_from_host("https", host) == origin


@pytest.mark.parametrize("raw, words", [
    ("play.example.com", "but it is 'play.example.com'"), ("https://u:p@x.example", "user name or password"),
    ("https://x.example/app", "path, query or fragment"), ("https://x.example:99999", "cannot be read"),
    ("ftp://x.example", "but it is 'ftp://x.example'")])
def test_the_public_url_setting_is_checked_in_words(raw: str, words: str) -> None:
    with pytest.raises(ValueError, match="PLAYGROUND_PUBLIC_URL must be the address people open") as err:
        load_settings({"PLAYGROUND_PUBLIC_URL": raw})
    assert words in str(err.value) and "u:p" not in str(err.value)
    assert load_settings({"PLAYGROUND_PUBLIC_URL": "https://Play.example.com/"}).public_url == \
        "https://play.example.com"


def test_embed_code_keeps_the_shape_and_escapes_the_title() -> None:
    subject = unfurl.Subject("run", "abcdefgh", 'say "hi" <now>', "", unfurl.READY, "/run?id=abcdefgh",
                             size=(720, 1280))
    code = unfurl.embed_code("https://play.example.com/e/abcdefgh", subject)
    assert code.startswith('<iframe src="https://play.example.com/e/abcdefgh" width="360" height="640"')
    assert "aspect-ratio:360/640" in code and 'title="say &quot;hi&quot; &lt;now&gt;"' in code


def test_under_a_base_url_path_every_url_carries_it(ledger: Ledger, archive: Path) -> None:
    token = "KiteVideoToken_0123456789"
    rid = seed(ledger, "a kite", video=token, poster=token)

    class Based(Server):
        def __init__(self) -> None:
            self.port = free_port()
            routes = (archive_route.make_routes(lambda: LocalFolder(archive),
                                                prefix=archive_route.prefix_for("play"))
                      + unfurl_route.make_routes(lambda: ledger, base_path="/play/"))
            config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=self.port,
                                    log_level="warning", lifespan="off")
            self.server = uvicorn.Server(config)
            self.thread = threading.Thread(target=self.server.run, daemon=True)

    with Based() as srv:
        assert get(srv, f"/s/{rid}").status_code == 404
        page = Page(get(srv, f"/play/s/{rid}").text)
        embed = Page(get(srv, f"/play/e/{rid}").text)
        part = requests.get(page.one("og:video"), headers={"Range": "bytes=0-9"}, timeout=10)
        assert part.status_code == 206
    assert page.one("og:video") == f"{srv.url}/play/archive/videos/{token}.mp4"
    assert page.one("og:url") == f"{srv.url}/play/s/{rid}" and page.refresh == f"0; url=/play/run?id={rid}"
    assert embed.videos[0]["src"] == f"/play/archive/videos/{token}.mp4" and embed.links == [
        f"/play/run?id={rid}"]


def test_a_run_whose_archiving_failed_says_so_without_the_gateways_words(server: Server,
                                                                          ledger: Ledger) -> None:
    rid = seed(ledger, "a lighthouse", error_code="too_large",
               error_message="GATEWAY WORDS: larger than the archive's limit")
    page = Page(get(server, f"/s/{rid}").text)
    assert page.one("og:description") == ("This 5-second 16:9 landscape video in std quality (720p) finished "
                                          "but could not be saved here, so there is nothing to play.")
    assert "og:video" not in page.meta and "GATEWAY WORDS" not in get(server, f"/e/{rid}").text


def test_a_new_kind_of_link_is_one_entry(ledger: Ledger) -> None:
    """What a sequence kind will be: one more Kind; the page builders take its Subject as they are."""
    seq_id = Ledger.new_id()
    sequence = unfurl.Kind("sequence", lambda led, ident: unfurl.Subject(
        "sequence", ident, "Three shots", "3 shots, 15 seconds.", unfurl.READY, f"/run?sequence={ident}")
        if ident == seq_id else None)
    assert unfurl.find(ledger, seq_id) is None
    found = unfurl.find(ledger, seq_id, kinds=(*unfurl.KINDS, sequence))
    assert found is not None and found.kind == "sequence"
    page = Page(unfurl.link_page(found, "https://play.example.com"))
    assert page.one("og:title") == "Three shots" and page.refresh == f"0; url=/run?sequence={seq_id}"
