"""Frame images on Compose as an anonymous attacker would send them: a decompression bomb, an oversized
file; and an honest image, whose preview must be made once rather than on every rerun.

Memory is read from Pillow's own allocator (Image.core.get_stats(): every decoded pixel lives in its
16 MB blocks; tracemalloc cannot see them). Each test shows first that the meter does see a real decode.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

from lib import contract, images
from lib.ledger import Ledger
from lib.ui import compose_form
from lib.ui.text import unescape_md
from tests.fixtures.bombs import bomb_png

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
FILE_KEY = compose_form.file_key("first_frame")


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.context["url"] = "http://127.0.0.1:8501/"
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [unescape_md(e.value) for e in at.error]


def pillow_mb_allocated() -> float:
    """MB of image memory Pillow allocated since the last reset."""
    return Image.core.get_stats()["allocated_blocks"] * Image.core.get_block_size() / 2**20


def test_the_meter_sees_a_real_decode() -> None:
    Image.core.reset_stats()
    Image.new("RGB", (3000, 3000)).load()  # 27 MB of pixels
    assert pillow_mb_allocated() >= 32


def test_a_decompression_bomb_is_refused_in_words_without_being_decoded(isolated: Path) -> None:
    bomb = bomb_png()  # 13,000 × 13,000 px in ~0.5 MB: 676 MB once decoded as RGBA
    assert len(bomb) < 600_000
    at = new_app()
    at.text_area(key=compose_form.PROMPT).set_value("A lighthouse at dusk").run()
    Image.core.reset_stats()
    at.file_uploader(key=FILE_KEY).upload("holiday.png", bomb, "image/png").run()
    assert not at.exception
    assert pillow_mb_allocated() < 40, Image.core.get_stats()
    words = ("The first frame is 169 megapixels; the limit is 40 megapixels, so it was not opened — resize "
             "it (4,000 px on the long side is plenty for a 1080p video).")
    assert words in errors(at)
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    assert ledger.find_upload(images.content_hash(bomb)) is None  # never sent to the gateway
    for _ in range(3):  # reruns (a click elsewhere) do not decode it either
        at.run()
    at.button(key=f"{compose_form.K}generate_button").click().run()
    assert pillow_mb_allocated() < 40, Image.core.get_stats()
    assert words in errors(at)
    assert ledger.list_runs(limit=5) == []  # Generate sent nothing
    assert at.text_area(key=compose_form.PROMPT).value == "A lighthouse at dusk"


def test_a_bomb_between_40_and_80_megapixels_is_refused_with_its_size() -> None:
    at = new_app()
    Image.core.reset_stats()
    at.file_uploader(key=FILE_KEY).upload("wide.png", bomb_png(7000, 7000), "image/png").run()
    assert pillow_mb_allocated() < 40
    assert any(e.startswith("The first frame is 7,000×7,000 px (49 megapixels); the limit is 40 megapixels")
               for e in errors(at)), errors(at)


def test_an_upload_over_10_mb_is_refused_and_every_limit_says_the_same(isolated: Path) -> None:
    at = new_app()
    at.text_area(key=compose_form.PROMPT).set_value("A harbour at dawn").run()
    uploader = at.file_uploader(key=FILE_KEY)
    assert uploader.proto.max_upload_size_mb == contract.MAX_IMAGE_MB  # "10MB per file"
    assert "up to 10 MB" in uploader.help and "40 megapixels" in uploader.help
    rnd = random.Random(3)
    noisy = Image.frombytes("RGB", (1900, 1800), rnd.randbytes(1900 * 1800 * 3))
    buf = io.BytesIO()
    noisy.save(buf, "PNG", compress_level=0)
    data = buf.getvalue()
    assert len(data) > contract.MAX_IMAGE_BYTES
    uploader.upload("big.png", data, "image/png").run()
    words = (f"The first frame is {len(data) / 1e6:.1f} MB ({len(data):,} bytes); the limit is 10 MB — "
             "resize or compress it (a JPEG at quality 85 is usually far smaller).")
    assert words in errors(at)
    at.button(key=f"{compose_form.K}generate_button").click().run()
    assert words in errors(at)
    assert Ledger(f"sqlite:///{isolated / 'ledger.db'}").list_runs(limit=5) == []  # Generate sent nothing


def test_the_preview_is_made_once_not_on_every_rerun(monkeypatch) -> None:
    made: list[int] = []
    real = images.make_preview

    def counting(data: bytes, side: int = images.PREVIEW_SIDE) -> bytes | None:
        made.append(len(data))
        return real(data, side)

    monkeypatch.setattr(images, "make_preview", counting)
    photo = Image.effect_noise((2400, 1600), 40).convert("RGB")
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    at = new_app()
    at.file_uploader(key=FILE_KEY).upload("photo.png", buf.getvalue(), "image/png").run()
    assert not errors(at)
    shown = at.get("image")
    assert shown, "no preview drawn"
    Image.core.reset_stats()
    for _ in range(4):
        at.run()
    assert len(made) == 1
    assert pillow_mb_allocated() < 2  # each rerun handles a 220-px preview, not the 2400×1600 photo
    thumb = images.preview(images.content_hash(buf.getvalue()), lambda: b"")
    assert thumb is not None and max(Image.open(io.BytesIO(thumb)).size) <= images.PREVIEW_SIDE
