"""Fix a frame that breaks kling-v3's image rules, instead of only refusing it.

Why: an image too wide or too tall (beyond 1:2.5 or 2.5:1), smaller than the minimum side, in a format
kling-v3 may reject, or a PNG over the size limit is still a picture the user wants to start from. Cropping
or padding it to the video's aspect ratio, enlarging it to the minimum side and re-encoding it as JPEG or
PNG gives a frame the gateway accepts, and shows the user exactly what is sent (the Compose form previews
and checks the result like any upload). The crop region comes from streamlit-extras' image_crop as
fractions of the picture as the user sees it, so EXIF rotation is applied first.
"""
from __future__ import annotations

import io
from typing import TypedDict

from PIL import Image, ImageOps

from lib.contract import MAX_IMAGE_BYTES, MAX_IMAGE_RATIO, MIN_IMAGE_SIDE, image_info

PAD_COLOUR = (0, 0, 0)  # bars as a letterbox: what a video player shows around a picture anyway
JPEG_QUALITY = 90


class Bounds(TypedDict):
    """A crop region as fractions (0-1) of the picture's width and height."""

    x: float
    y: float
    width: float
    height: float


def ratio_of(aspect: str) -> float:
    """Width over height of an aspect like "16:9"."""
    w, h = (float(part) for part in aspect.split(":"))
    return w / h


def fixable(data: bytes) -> bool:
    """Whether the bytes are a picture we may open (the header is checked: a bomb is not)."""
    try:
        image_info(data)
    except ValueError:  # TooManyPixels is one: such a file is never decoded
        return False
    return True


def size_of(data: bytes) -> tuple[int, int]:
    """(width, height) as the user sees the picture (EXIF rotation applied)."""
    with _open(data) as img:
        return img.size


def centered(width: int, height: int, ratio: float) -> Bounds:
    """The largest region of `ratio` in the middle of a width × height picture."""
    if width / height > ratio:  # too wide: full height, a middle slice of the width
        w = height * ratio / width
        return Bounds(x=(1 - w) / 2, y=0.0, width=w, height=1.0)
    h = width / ratio / height
    return Bounds(x=0.0, y=(1 - h) / 2, width=1.0, height=h)


def crop(data: bytes, bounds: Bounds | None, ratio: float) -> bytes:
    """The region `bounds` (the middle at `ratio` when None or empty), enlarged and encoded to the rules."""
    with _open(data) as img:
        return _finish(img.crop(_box(bounds, *img.size, ratio)), img.format)


def pad(data: bytes, ratio: float) -> bytes:
    """The whole picture on a canvas of `ratio` (bars left and right, or above and below)."""
    with _open(data) as img:
        width, height = img.size
        if width / height > ratio:
            size = (width, max(height, round(width / ratio)))
        else:
            size = (max(width, round(height * ratio)), height)
        padded = ImageOps.pad(img.convert("RGB"), size, color=PAD_COLOUR)
        return _finish(padded, img.format)


def _open(data: bytes) -> Image.Image:
    image_info(data)  # refuses a bomb before a pixel is decoded
    img = Image.open(io.BytesIO(data))
    fmt = img.format
    out = ImageOps.exif_transpose(img)
    out.format = fmt
    return out


def _box(bounds: Bounds | None, width: int, height: int, ratio: float) -> tuple[int, int, int, int]:
    """Pixel box of `bounds`, clamped to the picture; the middle at `ratio` when the region is missing,
    a sliver, or itself outside the aspect rules (the component's numbers are input, not promises)."""
    def box_of(b: Bounds) -> tuple[int, int, int, int]:
        x0, y0 = (min(max(v, 0.0), 1.0) for v in (b["x"], b["y"]))
        x1 = min(max(b["x"] + b["width"], 0.0), 1.0)
        y1 = min(max(b["y"] + b["height"], 0.0), 1.0)
        return round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)

    if bounds:
        left, top, right, bottom = box_of(bounds)
        w, h = right - left, bottom - top
        if w >= 2 and h >= 2 and max(w, h) / min(w, h) <= MAX_IMAGE_RATIO:
            return left, top, right, bottom
    return box_of(centered(width, height, ratio))


def _finish(img: Image.Image, source_format: str | None) -> bytes:
    """At least MIN_IMAGE_SIDE a side (enlarged, shape kept), as JPEG (a JPEG source) or PNG, under the
    size limit (a PNG that is too big becomes a JPEG)."""
    short = min(img.size)
    if short < MIN_IMAGE_SIDE:
        scale = MIN_IMAGE_SIDE / short
        img = img.resize((max(MIN_IMAGE_SIDE, round(img.width * scale)),
                          max(MIN_IMAGE_SIDE, round(img.height * scale))), Image.Resampling.LANCZOS)
    if source_format != "JPEG":
        png = io.BytesIO()
        (img if img.mode in ("RGB", "RGBA", "L") else img.convert("RGBA")).save(png, "PNG")
        if png.tell() <= MAX_IMAGE_BYTES:
            return png.getvalue()
    quality = JPEG_QUALITY
    while True:
        jpeg = io.BytesIO()
        img.convert("RGB").save(jpeg, "JPEG", quality=quality)
        if jpeg.tell() <= MAX_IMAGE_BYTES or quality <= 40:
            return jpeg.getvalue()
        quality -= 15
