"""The archive route (lib/archive_route.py) over real HTTP: uvicorn on 127.0.0.1 serving only our routes.

Streamlit's own middleware (which rejects some escapes with 400 before any route sees them) is not in
front here, so every refusal below is the route's and the storage's own. tests/e2e/test_archive_e2e.py
repeats the essentials against `streamlit run app.py`.
"""
from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from lib import archive_route
from lib.storage import MAX_FILE_BYTES, LocalFolder, Storage
from tests.fixtures.servers import free_port

TOKEN = "Zx8_k2-QmR4vT7wYb1nC3dE5"
LEGACY = "Q1w2E3r4T5y6U7i8O9p0As"  # a run id, as files were named before tokens
BODY = bytes(range(256)) * 20  # 5,120 bytes, every offset distinguishable


class Server:
    def __init__(self, storage: Callable[[], Storage], **kw: object) -> None:
        self.port = free_port()
        app = Starlette(routes=archive_route.make_routes(storage, **kw))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def raw(self, path: str, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        """The path exactly as given (requests/urllib3 would normalise `..` away)."""
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            con.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                con.putheader(k, v)
            con.endheaders()
            resp = con.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            con.close()


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    root = tmp_path / "somewhere else" / "archive"
    (root / "videos").mkdir(parents=True)
    (root / "posters").mkdir()
    (root / "uploads").mkdir()
    (root / "videos" / f"{TOKEN}.mp4").write_bytes(BODY)
    (root / "videos" / f"{LEGACY}.mp4").write_bytes(b"legacy mp4 bytes")
    (root / "posters" / f"{TOKEN}.jpg").write_bytes(b"\xff\xd8\xff poster")
    (root / "uploads" / f"{'a' * 64}.png").write_bytes(b"\x89PNG upload")
    (root / "videos" / ".part-abcdefgh.mp4").write_bytes(b"half a file")
    (tmp_path / "secret.txt").write_text("SECRET OUTSIDE THE ARCHIVE")
    return root


@pytest.fixture
def server(archive_dir: Path) -> Iterator[Server]:
    with Server(lambda: LocalFolder(archive_dir)) as srv:
        yield srv


VIDEO = f"/archive/videos/{TOKEN}.mp4"


def test_a_video_is_sent_whole_with_type_caching_and_no_cors(server: Server) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Origin": "https://evil.example"}, timeout=10)
    assert resp.status_code == 200 and resp.content == BODY
    h = resp.headers
    assert h["content-type"] == "video/mp4" and h["content-length"] == str(len(BODY))
    assert h["accept-ranges"] == "bytes" and h["x-content-type-options"] == "nosniff"
    assert "max-age=31536000" in h["cache-control"] and "immutable" in h["cache-control"]
    assert h["etag"].startswith('"') and h["last-modified"].endswith("GMT")
    assert h["content-disposition"] == "inline"
    assert not any(k.lower().startswith("access-control-") for k in h)


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 100),
    ("bytes=100-", 100, len(BODY)),
    ("bytes=-50", len(BODY) - 50, len(BODY)),
    ("bytes=5000-999999", 5000, len(BODY)),
    ("bytes=7-7", 7, 8),
    ("BYTES = 10-19", 10, 20),
])
def test_byte_ranges_answer_206(server: Server, header: str, start: int, end: int) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Range": header}, timeout=10)
    assert resp.status_code == 206, resp.status_code
    assert resp.content == BODY[start:end]
    assert resp.headers["content-range"] == f"bytes {start}-{end - 1}/{len(BODY)}"
    assert resp.headers["content-length"] == str(end - start)
    assert resp.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=5120-", "bytes=999999-", "bytes=-0"])
def test_a_range_past_the_end_is_416(server: Server, header: str) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Range": header}, timeout=10)
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=0-1,5-6", "items=0-5", "bytes=²-5", "bytes=9-3",
                                    "bytes=" + "9" * 5000 + "-", "bytes"])
def test_odd_ranges_get_the_whole_file(server: Server, header: str) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Range": header}, timeout=10)
    assert resp.status_code == 200 and resp.content == BODY


def test_head_conditional_requests_and_if_range(server: Server) -> None:
    head = requests.head(server.url + VIDEO, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(BODY))
    etag, modified = head.headers["etag"], head.headers["last-modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'},
                    {"If-Modified-Since": modified}, {"If-Modified-Since": formatdate(time.time() + 60,
                                                                                     usegmt=True)}):
        resp = requests.get(server.url + VIDEO, headers=headers, timeout=10)
        assert resp.status_code == 304 and resp.content == b"", headers
        assert resp.headers["etag"] == etag
    def status(**headers: str) -> int:
        return requests.get(server.url + VIDEO, headers=headers, timeout=10).status_code

    assert status(**{"If-None-Match": '"other"'}) == 200
    assert status(**{"If-Modified-Since": formatdate(time.time() - 10 * 86400, usegmt=True)}) == 200
    ranged = {"Range": "bytes=0-9"}
    assert status(**ranged, **{"If-Range": etag}) == 206
    stale = requests.get(server.url + VIDEO, headers={**ranged, "If-Range": '"stale"'}, timeout=10)
    assert stale.status_code == 200 and stale.content == BODY


def test_posters_are_jpeg_and_download_asks_for_a_file(server: Server) -> None:
    poster = requests.get(f"{server.url}/archive/posters/{TOKEN}.jpg", timeout=10)
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    dl = requests.get(server.url + VIDEO + "?download=1", timeout=10)
    assert dl.status_code == 200 and dl.content == BODY
    assert dl.headers["content-disposition"] == f'attachment; filename="kling-{TOKEN[:8]}.mp4"'


def test_files_archived_before_tokens_keep_playing(server: Server) -> None:
    resp = requests.get(f"{server.url}/archive/videos/{LEGACY}.mp4", timeout=10)
    assert resp.status_code == 200 and resp.content == b"legacy mp4 bytes"


@pytest.mark.parametrize("path", [
    "/archive/videos/AAAAAAAAAAAAAAAAAAAAAAAA.mp4",       # unknown token
    "/archive", "/archive/", "/archive/videos", "/archive/videos/", "/archive/posters/",  # no listing
    f"/archive/uploads/{'a' * 64}.png",                   # in the archive, but not served
    "/archive/videos/.part-abcdefgh.mp4",                 # a half-written file
    f"/archive/videos/{TOKEN}.jpg", f"/archive/posters/{TOKEN}.mp4",  # wrong kind
    f"/archive/videos/{TOKEN}.MP4", f"/archive/videos/{TOKEN}",
    "/archive/videos/short.mp4", f"/archive/videos/{'x' * 65}.mp4",
    "/archive/videos/../../secret.txt", "/archive/videos/..%2F..%2Fsecret.txt",
    "/archive/videos/%2e%2e%2f%2e%2e%2fsecret.txt", "/archive/..%2F..%2Fsecret.txt",
    "/archive/videos/..%5C..%5Csecret.txt", "/archive/%2Fetc%2Fpasswd", "/archive/videos/%00.mp4",
    f"/archive/videos/{TOKEN}.mp4%00.jpg", f"/archive/./videos/{TOKEN}.mp4x",
])
def test_anything_else_is_404_with_nothing_revealed(server: Server, path: str) -> None:
    status, headers, body = server.raw(path)
    assert status == 404, (path, status)
    assert body == b"Not found." and b"SECRET" not in body
    assert headers["cache-control"] == "no-store"


def test_a_symlink_out_of_the_archive_is_not_followed(server: Server, archive_dir: Path) -> None:
    name = "Ls9dK3mP0qR7sT2uV5wX8yZ1"
    os.symlink(archive_dir.parents[1] / "secret.txt", archive_dir / "videos" / f"{name}.mp4")
    os.symlink(archive_dir.parents[1], archive_dir / "posters" / "outside")
    for path in (f"/archive/videos/{name}.mp4", "/archive/posters/outside/secret.txt"):
        status, _, body = server.raw(path)
        assert status == 404 and b"SECRET" not in body


def test_other_methods_are_refused(server: Server) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = server.raw(VIDEO, method=method)
        assert status == 405
    assert set(archive_route.KINDS) == {"videos", "posters"}


def test_nothing_above_the_size_cap_is_served(archive_dir: Path) -> None:
    at_cap, over = "Capcapcapcapcapcapcap001", "Capcapcapcapcapcapcap002"
    (archive_dir / "videos" / f"{at_cap}.mp4").write_bytes(b"x" * 1000)
    (archive_dir / "videos" / f"{over}.mp4").write_bytes(b"x" * 1001)
    with Server(lambda: LocalFolder(archive_dir), max_bytes=1000) as srv:
        assert requests.get(f"{srv.url}/archive/videos/{at_cap}.mp4", timeout=10).status_code == 200
        assert requests.get(f"{srv.url}/archive/videos/{over}.mp4", timeout=10).status_code == 404
    assert archive_route.make_routes.__kwdefaults__["max_bytes"] == MAX_FILE_BYTES


def test_a_broken_setting_is_503_in_words_and_read_again_next_time(archive_dir: Path) -> None:
    calls = []

    def storage() -> Storage:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("PLAYGROUND_ARCHIVE is not usable: /secret/path")
        return LocalFolder(archive_dir)

    with Server(storage) as srv:
        first = requests.get(srv.url + VIDEO, timeout=10)
        assert first.status_code == 503 and first.text == "The archive is not available right now."
        assert requests.get(srv.url + VIDEO, timeout=10).status_code == 200


def test_the_prefix_follows_the_base_url_path() -> None:
    assert archive_route.prefix_for("") == "/archive"
    assert archive_route.prefix_for(None) == "/archive"
    assert archive_route.prefix_for("/team/") == "/team/archive"
    assert archive_route.url_path(f"videos/{TOKEN}.mp4") == VIDEO
    with pytest.raises(ValueError):
        archive_route.url_path(f"uploads/{'a' * 64}.png")
