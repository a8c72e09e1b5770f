"""The archive route (lib/archive_route.py) serving from object storage: SeaweedFS behind S3Bucket.

The route streams from the bucket (no redirect to a presigned URL: see docs/internals.md), so everything
a player needs must hold exactly as for a folder: whole file, byte ranges (206), 416 past the end, HEAD,
304 for If-None-Match / If-Modified-Since, If-Range, and 404 for anything not stored or not served. A
store that stops answering is a 503 in words (never a 404 that a cache could keep), and the same link
plays again once it is back. Two servers on one bucket (two replicas) answer with the same ETag.
"""
from __future__ import annotations

from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests

from lib.storage import S3Bucket
from tests.fixtures.seaweed import Seaweed
from tests.unit.test_archive_route import BODY, TOKEN, VIDEO, Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def bucket(seaweed: Seaweed) -> S3Bucket:
    store = seaweed.bucket()
    store.put(f"videos/{TOKEN}.mp4", [BODY])
    store.put(f"posters/{TOKEN}.jpg", [b"\xff\xd8\xff poster"])
    store.put(f"uploads/{'a' * 64}.png", [b"\x89PNG upload"])
    return store


@pytest.fixture(scope="module")
def server(bucket: S3Bucket) -> Iterator[Server]:
    with Server(lambda: bucket) as srv:
        yield srv


def test_a_video_from_the_bucket_is_sent_whole_with_its_headers(server: Server) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Origin": "https://evil.example"}, timeout=10)
    assert resp.status_code == 200 and resp.content == BODY
    h = resp.headers
    assert h["content-type"] == "video/mp4" and h["content-length"] == str(len(BODY))
    assert h["accept-ranges"] == "bytes" and "immutable" in h["cache-control"]
    assert not any(k.lower().startswith("access-control-") for k in h)


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 100), ("bytes=100-", 100, len(BODY)), ("bytes=-50", len(BODY) - 50, len(BODY)),
    ("bytes=5000-999999", 5000, len(BODY)), ("bytes=7-7", 7, 8),
])
def test_byte_ranges_from_the_bucket_answer_206(server: Server, header: str, start: int, end: int) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Range": header}, timeout=10)
    assert resp.status_code == 206 and resp.content == BODY[start:end]
    assert resp.headers["content-range"] == f"bytes {start}-{end - 1}/{len(BODY)}"


@pytest.mark.parametrize("header", ["bytes=5120-", "bytes=-0"])
def test_past_the_end_is_416(server: Server, header: str) -> None:
    resp = requests.get(server.url + VIDEO, headers={"Range": header}, timeout=10)
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{len(BODY)}"


def test_head_304_and_if_range_on_the_bucket(server: Server) -> None:
    head = requests.head(server.url + VIDEO, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(BODY))
    etag, modified = head.headers["etag"], head.headers["last-modified"]
    for headers in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        resp = requests.get(server.url + VIDEO, headers=headers, timeout=10)
        assert resp.status_code == 304 and resp.content == b"", headers
    ranged = requests.get(server.url + VIDEO, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == BODY[:10]
    stale = requests.get(server.url + VIDEO, headers={"Range": "bytes=0-9", "If-Range": '"x"'}, timeout=10)
    assert stale.status_code == 200 and stale.content == BODY
    old = formatdate(0, usegmt=True)
    assert requests.get(server.url + VIDEO, headers={"If-Modified-Since": old}, timeout=10).status_code == 200


@pytest.mark.parametrize("path", [
    "/archive/videos/AAAAAAAAAAAAAAAAAAAAAAAA.mp4", f"/archive/uploads/{'a' * 64}.png", "/archive/",
    "/archive/videos/..%2F..%2Fuploads", f"/archive/posters/{TOKEN}.mp4",
])
def test_nothing_else_in_the_bucket_is_served(server: Server, path: str) -> None:
    status, headers, body = server.raw(path)
    assert status == 404 and body == b"Not found." and headers["cache-control"] == "no-store"


def test_two_replicas_answer_alike(bucket: S3Bucket, server: Server) -> None:
    with Server(lambda: S3Bucket(bucket.location)) as other:
        one = requests.head(server.url + VIDEO, timeout=10).headers
        two = requests.head(other.url + VIDEO, timeout=10).headers
        assert one["etag"] == two["etag"] and one["last-modified"] == two["last-modified"]
        got = requests.get(other.url + VIDEO, headers={"Range": "bytes=10-19"}, timeout=10)
        assert got.status_code == 206 and got.content == BODY[10:20]


def test_a_store_that_stops_is_503_in_words_and_the_link_plays_again(seaweed: Seaweed) -> None:
    gateway = seaweed.gateway()
    store = seaweed.bucket(endpoint=gateway.url, attempts=1)
    store.put(f"videos/{TOKEN}.mp4", [BODY])
    with Server(lambda: store) as srv:
        assert requests.get(srv.url + VIDEO, timeout=10).content == BODY
        gateway.stop()
        down = requests.get(srv.url + VIDEO, headers={"Range": "bytes=0-9"}, timeout=30)
        assert down.status_code == 503 and down.text == "The archive is not available right now."
        assert down.headers["cache-control"] == "no-store"
        assert seaweed.secret_key not in down.text and "127.0.0.1" not in down.text
        gateway.start()
        back = requests.get(srv.url + VIDEO, headers={"Range": "bytes=0-9"}, timeout=10)
        assert back.status_code == 206 and back.content == BODY[:10]
