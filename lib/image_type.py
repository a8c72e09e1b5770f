"""What an image file is, read by Pillow from its header: the one image sniffer.

Why one, and why Pillow: the app's checks (lib/contract.py), the upload's content type (lib/gateway) and
the embedded gateway's upload check (lib/local_gateway) used to keep three lists of magic bytes that could
disagree; Pillow reads the real header, so a file that merely starts with "\\x89PNG" is not a PNG.
Header only: `Image.open` decodes no pixel, so this is cheap even for a decompression bomb (Pillow's own
guard, `Image.MAX_IMAGE_PIXELS`, trips while opening: `PixelBomb`).
No dependency on lib/contract.py, so the embedded gateway stays an independent referee.
"""
from __future__ import annotations

import io
import re

from PIL import Image, UnidentifiedImageError

# Only formats someone might plausibly pick; other Pillow plugins sniff loosely and could "recognise" text.
KNOWN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# The four the gateway accepts (docs/api-contract.md §6), as (content type, file extension).
GATEWAY_TYPES: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class PixelBomb(ValueError):
    """Pillow refused to open the header: it promises more than twice `Image.MAX_IMAGE_PIXELS`."""

    def __init__(self, pixels: int | None) -> None:
        self.pixels = pixels
        super().__init__(f"image of {pixels or 'too many'} pixels refused by Pillow's limit")


def read_header(data: bytes) -> tuple[str, int, int]:
    """(Pillow format name, width, height); PixelBomb, or ValueError when it is not an image of
    KNOWN_FORMATS."""
    try:
        with Image.open(io.BytesIO(data), formats=KNOWN_FORMATS) as img:
            return str(img.format), int(img.width), int(img.height)
    except Image.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        raise PixelBomb(int(found.group(1)) if found else None) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable image ({exc.__class__.__name__})") from exc


def gateway_type(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) for a JPEG, PNG, WebP or GIF; None for anything else (a bomb included:
    its format is not told, and nobody should send it)."""
    try:
        fmt = read_header(data)[0]
    except ValueError:
        return None
    return GATEWAY_TYPES.get(fmt)
