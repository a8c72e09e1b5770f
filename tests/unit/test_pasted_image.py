"""lib.pasted_image: a pasted frame URL is fetched once through the guarded fetcher and judged in words.

A real HTTP server on 127.0.0.1 serves a web page, images and errors; the fetcher's policy allows that
private address only where a test says so (as the app trusts only its gateway's own origin)."""
from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from lib import pasted_image
from lib.contract import MAX_IMAGE_BYTES
from lib.safe_fetch import FetchPolicy, SafeFetcher


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (20, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


BODIES: dict[str, tuple[int, str, bytes]] = {
    "/page.html": (200, "text/html; charset=utf-8", b"<!doctype html><html><body>a page</body></html>"),
    "/good.png": (200, "image/png", _png(640, 360)),
    "/tiny.png": (200, "image/png", _png(120, 90)),
    "/notes.jpg": (200, "image/jpeg", b"not a picture at all " * 10),
    "/huge.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_IMAGE_BYTES + 10)),
}


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, kind, body = BODIES.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the fetcher stopped at the cap
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


OPEN = pasted_image.quick_fetcher(SafeFetcher(FetchPolicy(allow_private=True)))


def words(url: str, fetcher: SafeFetcher = OPEN) -> list[str]:
    return [p.message for p in pasted_image.check_url(fetcher, url, "first_frame") if p.level == "error"]


def test_a_usable_image_has_no_problem(base: str) -> None:
    assert pasted_image.check_url(OPEN, f"{base}/good.png", "first_frame") == []


def test_a_web_page_is_named_as_one(base: str) -> None:
    (text,) = words(f"{base}/page.html")
    assert "leads to a web page (text/html), not an image" in text and "upload the file" in text


def test_image_rules_of_the_contract_apply_to_the_downloaded_bytes(base: str) -> None:
    (small,) = words(f"{base}/tiny.png")
    assert "120×90 px" in small and "at least 300 px" in small
    (fake,) = words(f"{base}/notes.jpg")
    assert "is not a JPEG or PNG image" in fake
    (big,) = words(f"{base}/huge.png")
    assert "larger than 10 MB" in big


def test_unreachable_refused_and_missing_addresses_get_one_neutral_sentence(base: str) -> None:
    neutral = pasted_image.unreachable("first frame")
    assert words(f"{base}/nothing-here.png") == [neutral]           # HTTP 404
    closed = base.rsplit(":", 1)[0] + ":9"
    assert words(f"{closed}/x.png") == [neutral]                    # nothing listens
    guarded = pasted_image.quick_fetcher(SafeFetcher(FetchPolicy()))
    assert words(f"{base}/good.png", guarded) == [neutral]          # a private address: never fetched
    assert "127.0.0.1" not in neutral and "404" not in neutral


def test_a_malformed_address_is_refused_before_any_fetch() -> None:
    (text,) = words("http://user:pw@example.com/a.png")
    assert "user name or password" in text
