"""lib.frame_fix: a frame that breaks the image rules comes out of a crop or pad within them (real Pillow)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from lib import frame_fix
from lib.contract import MAX_IMAGE_RATIO, MIN_IMAGE_SIDE, check_image, image_info
from tests.fixtures.bombs import bomb_png


def picture(size: tuple[int, int], fmt: str = "PNG", orientation: int | None = None) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, size[0] // 2, size[1]))  # left half blue: where a crop came from shows
    out = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(out, fmt, exif=exif)
    else:
        img.save(out, fmt)
    return out.getvalue()


def dims(data: bytes) -> tuple[str, int, int]:
    return image_info(data)


@pytest.mark.parametrize("aspect", ["16:9", "9:16", "1:1"])
def test_a_too_wide_frame_cropped_in_the_middle_meets_every_rule(aspect: str) -> None:
    data = picture((1500, 400))
    assert any(p.level == "error" for p in check_image(data))  # 3.75:1 is refused as it is
    fixed = frame_fix.crop(data, None, frame_fix.ratio_of(aspect))
    fmt, w, h = dims(fixed)
    assert fmt == "PNG" and check_image(fixed) == []
    assert w / h == pytest.approx(frame_fix.ratio_of(aspect), rel=0.01)
    assert min(w, h) >= MIN_IMAGE_SIDE


def test_a_chosen_region_is_the_one_sent() -> None:
    data = picture((1200, 300))
    left = frame_fix.crop(data, {"x": 0.0, "y": 0.0, "width": 0.25, "height": 1.0}, 1.0)
    right = frame_fix.crop(data, {"x": 0.75, "y": 0.0, "width": 0.25, "height": 1.0}, 1.0)
    assert Image.open(io.BytesIO(left)).getpixel((10, 10)) == (30, 30, 200)
    assert Image.open(io.BytesIO(right)).getpixel((10, 10)) == (200, 30, 30)
    assert dims(left)[1:] == (300, 300) and check_image(left) == []


def test_an_empty_or_out_of_range_region_falls_back_to_the_middle() -> None:
    data = picture((1000, 250))
    for bounds in ({"x": 0.2, "y": 0.1, "width": 0.0, "height": 0.0},
                   {"x": 1.5, "y": -3.0, "width": 9.0, "height": 9.0}):
        fixed = frame_fix.crop(data, bounds, 16 / 9)
        assert check_image(fixed) == [], bounds


def test_pad_keeps_the_whole_picture_and_adds_bars() -> None:
    data = picture((1000, 250), "JPEG")
    fixed = frame_fix.pad(data, 16 / 9)
    fmt, w, h = dims(fixed)
    assert fmt == "JPEG" and (w, h) == (1000, 562) and check_image(fixed) == []
    img = Image.open(io.BytesIO(fixed)).convert("RGB")
    assert sum(img.getpixel((500, 5))) < 40  # a bar above the picture
    r, _, b = img.getpixel((10, h // 2))
    assert b > 150 and r < 90  # the picture itself, left half blue, kept whole


def test_a_tall_picture_pads_sideways_and_a_tiny_one_is_enlarged() -> None:
    fixed = frame_fix.pad(picture((200, 800)), 9 / 16)
    _, w, h = dims(fixed)
    assert w / h == pytest.approx(9 / 16, rel=0.01) and check_image(fixed) == []
    tiny = frame_fix.crop(picture((120, 90)), None, 1.0)
    assert dims(tiny)[1:] == (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE) and check_image(tiny) == []


def test_exif_rotation_is_applied_before_the_crop() -> None:
    data = picture((1200, 300), "JPEG", orientation=6)  # shown rotated: 300 wide, 1200 tall
    assert frame_fix.size_of(data) == (300, 1200)
    fixed = frame_fix.crop(data, None, 9 / 16)
    _, w, h = dims(fixed)
    assert h > w and max(w, h) / min(w, h) <= MAX_IMAGE_RATIO and check_image(fixed) == []


def test_what_cannot_be_opened_is_not_offered_a_fix() -> None:
    assert frame_fix.fixable(picture((1500, 400)))
    assert not frame_fix.fixable(b"<html>not an image</html>")
    Image.core.reset_stats()
    assert not frame_fix.fixable(bomb_png())  # 169 megapixels by its header: never decoded
    assert Image.core.get_stats()["allocated_blocks"] == 0


def test_centered_regions() -> None:
    assert frame_fix.centered(1600, 900, 16 / 9) == {"x": 0.0, "y": 0.0, "width": 1.0, "height": 1.0}
    wide = frame_fix.centered(2000, 500, 1.0)
    assert wide["width"] == pytest.approx(0.25) and wide["x"] == pytest.approx(0.375)


def test_a_truncated_picture_raises_what_the_dialog_turns_into_words() -> None:
    """The header reads (so a fix is offered) but the pixels stop half way: OSError, never a bad frame."""
    noisy = Image.frombytes("RGB", (1500, 400), bytes(i * 7 % 251 for i in range(1500 * 400 * 3)))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    cut = out.getvalue()[: len(out.getvalue()) // 2]
    assert frame_fix.fixable(cut)
    with pytest.raises(OSError):
        frame_fix.crop(cut, None, 16 / 9)
    with pytest.raises(OSError):
        frame_fix.pad(cut, 16 / 9)
