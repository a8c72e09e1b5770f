"""The embedded gateway refuses decompression bombs from their header: at upload (HTTP) and at render.

The HTTP test runs the gateway as its own process and reads that process's peak resident memory
(VmHWM) before and after; the render tests read Pillow's own allocator (Image.core.get_stats()), where
every decoded pixel lives, after showing that the same meter does see a real decode.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from lib.local_gateway.render import ImageTooLarge, check_image_size, render_clip
from tests.fixtures.bombs import bomb_png
from tests.fixtures.servers import GatewayProcess

SUBMIT = "/v1/videos/generations"
AUTH = {"Authorization": "Bearer test-key"}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def pillow_mb_allocated() -> float:
    return Image.core.get_stats()["allocated_blocks"] * Image.core.get_block_size() / 2**20


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


def upload(url: str, data: bytes) -> requests.Response:
    return requests.post(f"{url}/v1/uploads/images", files={"file": ("frame.png", data, "image/png")},
                         headers=AUTH, timeout=30)


def test_a_bomb_upload_is_refused_over_http_and_the_gateway_does_not_grow(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    try:
        assert upload(gateway.url, png((800, 600))).status_code == 200  # uploads work: warm the route
        assert gateway.proc is not None
        before = peak_rss_mb(gateway.proc.pid)
        resp = upload(gateway.url, bomb_png())
        assert resp.status_code == 400
        assert resp.json() == {"success": False, "message": "Image too large: the image has more than 80 "
                                                           "megapixels; the limit is 40 megapixels"}
        resp = upload(gateway.url, bomb_png(7000, 7000))
        assert resp.status_code == 400
        assert resp.json()["message"] == ("Image too large: the uploaded image is 7000×7000 px "
                                          "(49 megapixels); the limit is 40 megapixels")
        grew = peak_rss_mb(gateway.proc.pid) - before
        assert grew < 40, f"the gateway's peak memory grew by {grew:.0f} MB"  # decoding: 500+ MB
        assert gateway.proc.poll() is None
    finally:
        gateway.stop()


def test_the_meter_sees_a_real_decode() -> None:
    Image.core.reset_stats()
    Image.open(io.BytesIO(png((3000, 3000)))).load()
    assert pillow_mb_allocated() >= 32


def test_render_refuses_a_bomb_from_its_header(tmp_path: Path) -> None:
    Image.core.reset_stats()
    with pytest.raises(ImageTooLarge, match="more than 80 megapixels"):
        render_clip(tmp_path / "out.mp4", prompt="p", mode="std", duration=5, aspect="16:9",
                    first_image=bomb_png())
    with pytest.raises(ImageTooLarge, match=r"the last frame image is 7000×7000 px \(49 megapixels\)"):
        render_clip(tmp_path / "out.mp4", prompt="p", mode="std", duration=5, aspect="16:9",
                    first_image=png((800, 600)), last_image=bomb_png(7000, 7000))
    assert pillow_mb_allocated() < 40, Image.core.get_stats()
    assert not (tmp_path / "out.mp4").exists()
    assert check_image_size(png((6000, 6000))) == (6000, 6000)  # 36 MP: under the limit


def test_a_bomb_already_stored_fails_its_task_in_words(local_gateway) -> None:
    """An upload stored before this guard existed (or put there by hand) still cannot be decoded."""
    engine = local_gateway.gateway.engine
    info = engine.save_upload(bomb_png(), "old.png", "image/png", "png")
    url = f"{local_gateway.url}/files/uploads/{info['name']}"
    Image.core.reset_stats()
    resp = requests.post(local_gateway.url + SUBMIT, headers=local_gateway.headers, timeout=10, json={
        "model": "kling-v3", "prompt": "animate this", "image_urls": [url], "duration": 5})
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    deadline = time.monotonic() + 60
    body: dict = {}
    while time.monotonic() < deadline:
        body = requests.get(f"{local_gateway.url}{SUBMIT}/{task_id}", headers=local_gateway.headers,
                            timeout=10).json()
        if body["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert body["status"] == "failed", body
    assert "megapixels" in body["error"]["message"] and "limit is 40 megapixels" in body["error"]["message"]
    assert pillow_mb_allocated() < 40, Image.core.get_stats()
