"""Small previews of users' frame images, made once per file and kept by content hash.

Why: `st.image(bytes)` opens and resizes the whole image on every rerun of the page (a 40-megapixel frame
is ~160 MB of pixels and about a second, again on every click, for every session). A preview made once,
at most PREVIEW_SIDE pixels a side, costs a few KB; the cache is process-wide and bounded, so the same
file in many sessions is decoded once and a stream of new files cannot grow memory without limit.
Nothing here decodes an image that `contract.image_info` refuses (over 40 megapixels, or not an image).
"""
from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from PIL import Image, ImageOps

from lib.contract import image_info

log = logging.getLogger(__name__)

PREVIEW_SIDE = 220       # the width the form shows it at: Streamlit then has nothing left to resize
PREVIEW_ENTRIES = 64     # previews kept (a JPEG of ≤ 220 px is ~5-20 KB: ≤ ~1.3 MB in all)

_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_preview(data: bytes, side: int = PREVIEW_SIDE) -> bytes | None:
    """A JPEG of at most `side` px a side, or None when the file is not an image we may open.

    The header is checked first (image_info): a bomb is refused before a pixel is decoded. JPEGs are
    decoded at a reduced scale (Pillow's draft mode, used by thumbnail()), so even a big photo is cheap.
    """
    try:
        image_info(data)
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
            small = ImageOps.exif_transpose(img).convert("RGB")
    except (ValueError, OSError, Image.DecompressionBombError) as exc:
        log.info("no preview: %s", exc.__class__.__name__)
        return None
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return out.getvalue()


def preview(sha: str, data: Callable[[], bytes]) -> bytes | None:
    """The preview of the file whose sha256 is `sha`; `data` is called only when it is not cached."""
    with _lock:
        if sha in _cache:
            _cache.move_to_end(sha)
            return _cache[sha]
    made = make_preview(data())
    if made is None:
        return None
    with _lock:
        _cache[sha] = made
        _cache.move_to_end(sha)
        while len(_cache) > PREVIEW_ENTRIES:
            _cache.popitem(last=False)
    return made


def cached_count() -> int:
    """How many previews are kept (tests: the cache stays bounded)."""
    with _lock:
        return len(_cache)
