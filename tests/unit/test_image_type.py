"""lib/image_type.py: the one image sniffer (Pillow, header only), shared by the app, the client and the
embedded gateway, which must agree on what an image is."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from lib import contract, image_type
from lib.local_gateway import engine
from tests.fixtures.bombs import bomb_png


def _image(fmt: str, size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "kind"), [
    ("JPEG", ("image/jpeg", "jpg")), ("PNG", ("image/png", "png")), ("WEBP", ("image/webp", "webp")),
    ("GIF", ("image/gif", "gif")), ("BMP", None), ("TIFF", None),
])
def test_the_four_gateway_types_and_nothing_else(fmt: str, kind: tuple[str, str] | None) -> None:
    data = _image(fmt)
    assert image_type.read_header(data) == (fmt, 320, 240)
    assert image_type.gateway_type(data) == kind


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + b"\0" * 64, b"\xff\xd8\xff\xe0JFIF", b"RIFF\0\0\0\0WEBPVP8 ", b"GIF89a....",
    b"", b"hello", b"<svg/>",
])
def test_magic_bytes_alone_are_not_an_image(data: bytes) -> None:
    assert image_type.gateway_type(data) is None
    with pytest.raises(ValueError, match="not a readable image"):
        image_type.read_header(data)


def test_a_bomb_is_refused_from_its_header() -> None:
    bomb = bomb_png(20_000, 20_000)  # 400 megapixels promised by a small file
    with pytest.raises(image_type.PixelBomb):
        image_type.read_header(bomb)
    assert image_type.gateway_type(bomb) is None
    with pytest.raises(contract.TooManyPixels):
        contract.image_info(bomb)


def test_the_app_and_the_embedded_gateway_use_the_same_sniffer() -> None:
    assert not hasattr(engine, "sniff_image")
    assert engine.gateway_type is image_type.gateway_type
    png = _image("PNG")
    assert contract.image_info(png) == image_type.read_header(png)
