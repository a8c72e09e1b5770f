"""The embedded gateway fetches pasted image URLs: it must not be a way into this machine or a port scanner.

The embedded local gateway is what a public, key-less demo runs. A visitor pastes an image URL and reads
the task's error. These tests paste URLs aimed at loopback ports (closed and open), the metadata address,
odd spellings of 127.0.0.1, and redirects from an allowed host to each of those, over real HTTP, and
check that (1) nothing internal is ever connected to and (2) every refusal reads exactly the same.
"""
from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest
import requests
from PIL import Image

from lib.local_gateway import LocalGateway
from lib.local_gateway.engine import image_fetch_failed
from lib.safe_fetch import FetchPolicy, SafeFetcher
from tests.fixtures.hostile import SecretServer

SUBMIT = "/v1/videos/generations"
HEADERS = {"Authorization": "Bearer test-key"}
WORDS = "Generation failed: " + image_fetch_failed("first frame")


def red_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (220, 20, 20)).save(buf, format="PNG")
    return buf.getvalue()


class ImageHost:
    """An image host on 127.0.0.1 that counts connections: a real PNG, a page, a 404 and redirects."""

    def __init__(self, secret: SecretServer, closed_port: int) -> None:
        self.connections = 0
        png = red_png()
        owner = self
        targets = {
            "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "/to-closed-port": f"http://127.0.0.1:{closed_port}/x.png",
            "/to-open-port": f"{secret.url}/admin",
            "/to-decimal-ip": f"http://2130706433:{secret.port}/admin",
            "/to-localhost": f"http://localhost:{secret.port}/admin",
            "/to-file": "file:///etc/passwd",
        }

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/red.png":
                    self._send(200, "image/png", png)
                elif self.path in targets:
                    self.send_response(302)
                    self.send_header("Location", targets[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/page":
                    self._send(200, "text/html", b"<html>not an image</html>")
                elif self.path == "/text-as-png":
                    self._send(200, "image/png", b"this is text, not a PNG" * 20)
                elif self.path == "/huge.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(50 * 2**20))
                    self.end_headers()
                else:
                    self._send(404, "text/plain", b"no")

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                owner.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


@pytest.fixture
def image_host(secret_server: SecretServer) -> Iterator[ImageHost]:
    host = ImageHost(secret_server, closed_port())
    yield host
    host.stop()


def outcome(gw_url: str, image_url: str, timeout: float = 60) -> dict:
    """Submit with one pasted image URL and return the finished task body."""
    resp = requests.post(gw_url + SUBMIT, headers=HEADERS, timeout=10,
                         json={"model": "kling-v3", "prompt": "animate this", "image_urls": [image_url]})
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{gw_url}{SUBMIT}/{task_id}", headers=HEADERS, timeout=10).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never finished")


def test_internal_targets_all_get_the_same_words_and_are_never_connected_to(
    local_gateway: Any, image_host: ImageHost, secret_server: SecretServer
) -> None:
    """The default embedded gateway: closed port, open port, metadata, odd spellings -> one sentence."""
    port = secret_server.port
    urls = {
        "closed loopback port": f"http://127.0.0.1:{closed_port()}/x.png",
        "open loopback port (a real PNG)": image_host.url + "/red.png",
        "open loopback port (a secret)": f"http://127.0.0.1:{port}/admin",
        "open port, 404": image_host.url + "/missing.png",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "metadata ipv6": "http://[fd00:ec2::254]/latest/meta-data/",
        "decimal ip": f"http://2130706433:{port}/admin",
        "hex ip": f"http://0x7f.1:{port}/admin",
        "localhost": f"http://localhost:{port}/admin",
        "ipv6 loopback": f"http://[::1]:{port}/admin",
        "private network": "http://10.0.0.1/x.png",
        "a name that does not resolve": "http://no-such-host.invalid/x.png",
    }
    seen = {}
    for name, url in urls.items():
        body = outcome(local_gateway.url, url)
        assert body["status"] == "failed", (name, body)
        seen[name] = body["error"]["message"]
    assert set(seen.values()) == {WORDS}, seen
    assert image_host.connections == 0 and secret_server.connections == 0


def test_redirects_from_an_allowed_host_to_internal_targets_get_the_same_words(
    tmp_path: Path, image_host: ImageHost, secret_server: SecretServer
) -> None:
    """The image host stands in for a public site (trusted explicitly, test only); its redirects do not."""
    fetcher = SafeFetcher(FetchPolicy(trusted=(image_host.url,)), total_timeout=5.0)
    gw = LocalGateway(tmp_path / "gw", port=0, speed=40.0, image_fetcher=fetcher).start()
    try:
        seen = {}
        for path in ("/to-metadata", "/to-closed-port", "/to-open-port", "/to-decimal-ip", "/to-localhost",
                     "/to-file", "/page", "/text-as-png", "/huge.png", "/missing.png"):
            body = outcome(gw.url, image_host.url + path)
            assert body["status"] == "failed", (path, body)
            seen[path] = body["error"]["message"]
        assert set(seen.values()) == {WORDS}, seen
        assert secret_server.connections == 0

        # the control: the same gateway, the same host, a real image -> a video that starts on it
        done = outcome(gw.url, image_host.url + "/red.png")
        assert done["status"] == "completed", done
        video = requests.get(done["result"]["data"][0]["url"], timeout=30).content
        with av.open(io.BytesIO(video)) as c:
            first = next(c.decode(video=0)).to_ndarray(format="rgb24")
        h, w = first.shape[:2]
        centre = first[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3).mean(axis=0)
        assert centre[0] > 170 and centre[1] < 70 and centre[2] < 70, centre
    finally:
        gw.stop()
