"""lib/images.py previews (made once, bounded) and the one upload size rule shared with Streamlit."""
from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from lib import contract, images
from tests.fixtures.bombs import bomb_png

ROOT = Path(__file__).resolve().parents[2]


def png(size: tuple[int, int], color: tuple[int, int, int] = (10, 200, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_streamlit_refuses_the_same_uploads_as_our_rule() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == contract.MAX_IMAGE_MB
    assert contract.MAX_IMAGE_BYTES == contract.MAX_IMAGE_MB * 1_000_000
    assert f"up to {contract.MAX_IMAGE_MB} MB" in contract.IMAGE_RULES_TEXT


def test_a_preview_is_small_and_made_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_cache", type(images._cache)())
    data = png((1600, 900))
    calls: list[int] = []

    def source() -> bytes:
        calls.append(1)
        return data

    sha = images.content_hash(data)
    first = images.preview(sha, source)
    assert first is not None
    assert Image.open(io.BytesIO(first)).size == (220, 124)
    assert images.preview(sha, source) == first
    assert len(calls) == 1


def test_the_preview_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_cache", type(images._cache)())
    for i in range(images.PREVIEW_ENTRIES + 20):
        data = png((300, 300), (i % 256, 7, 7))
        assert images.preview(images.content_hash(data), lambda d=data: d) is not None
    assert images.cached_count() == images.PREVIEW_ENTRIES


def test_no_preview_of_a_bomb_or_of_something_else() -> None:
    Image.core.reset_stats()
    assert images.make_preview(bomb_png()) is None
    assert images.make_preview(bomb_png(7000, 7000, "L")) is None
    assert Image.core.get_stats()["allocated_blocks"] == 0
    assert images.make_preview(b"not an image at all") is None
