"""Submit-body validation with the V1 kling-v3 rules (docs/api-contract.md §3.1), accepting V3/V4 images;
with version="latest" also the newest page's (§3.2): `audio`, every duration 3–15, reference images.

The V1 field `image_urls` keeps its V1 rule (image-to-video at most 10 s) in both versions; frames named
in `image_with_roles` under latest have no such limit, as the newest page sets none.

The first problem found is reported as a 400 with its parameter, the way a gateway answers; the project's
own lib/contract.py is the place that lists every problem at once before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import invalid_request

MODEL = "kling-v3"
MODES = ("std", "pro")
DURATIONS = (5, 10, 15)
LATEST_DURATIONS = range(3, 16)
MAX_REFERENCES = 4
ASPECTS = ("16:9", "9:16", "1:1")
MAX_PROMPT = 2500
MAX_FRAME_IMAGES = 2
ROLES = ("first_frame", "last_frame", "reference", "reference_image")


@dataclass(frozen=True)
class ClipRequest:
    prompt: str
    mode: str
    duration: int
    aspect: str
    first_image: str | None
    last_image: str | None
    negative_prompt: str | None
    watermark: bool | None
    references: tuple[str, ...]
    audio: bool = False


def _check_url(value: Any, param: str) -> str:
    """A public http(s) URL, taken as sent: the page says "URLs must be public"
    (docs/kling-v3-generation.md), and a link with blanks in it, or no host, leads nowhere public."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_request(f"'{param}' must be an image URL string.", param)
    v = value
    low = v.strip()[:64].lower()
    if low.startswith("data:") or ";base64," in low or (len(v) > 200 and "://" not in v[:16]):
        raise invalid_request(
            f"'{param}' looks like base64 image data, which is not supported. Upload the "
            "image first (POST /v1/uploads/images) and pass its URL.",
            param,
        )
    if not (low.startswith("http://") or low.startswith("https://")):
        raise invalid_request(f"'{param}' must be a public http(s) URL.", param)
    if any(ch.isspace() for ch in v):
        raise invalid_request(f"'{param}' contains spaces or line breaks; a URL cannot (write %20).", param)
    if not urlsplit(v).hostname:
        raise invalid_request(f"'{param}' has no host name; use a full URL such as "
                              "https://example.com/frame.jpg.", param)
    return v


def parse_submit(body: Any, *, allow_pro_15: bool = True, version: str = "v1") -> ClipRequest:
    """Validate a submit body; raises ApiError(400) naming the first bad parameter."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None)
    model = body.get("model")
    if model is None:
        raise invalid_request("The 'model' field is required.", "model")
    if model != MODEL:
        raise invalid_request(f"Unsupported model {model!r}: this gateway serves only '{MODEL}'.", "model")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("The 'prompt' field is required.", "prompt")
    if len(prompt) > MAX_PROMPT:
        raise invalid_request(
            f"The 'prompt' field must be at most {MAX_PROMPT} characters (got {len(prompt)}).", "prompt"
        )
    mode = body.get("mode", "std")
    if mode not in MODES:
        raise invalid_request(f"Invalid 'mode' {mode!r}: must be one of std, pro.", "mode")
    latest = version == "latest"
    duration = body.get("duration", 5)
    allowed = LATEST_DURATIONS if latest else DURATIONS
    if isinstance(duration, bool) or not isinstance(duration, int) or duration not in allowed:
        words = "a whole number from 3 to 15" if latest else "one of 5, 10, 15 (a number)"
        raise invalid_request(f"Invalid 'duration' {duration!r}: must be {words}.", "duration")
    # a V1 gateway does not know `audio` (docs/api-contract.md §13 Q3): ignored, no Sound made or charged
    audio = body.get("audio", False) if latest else False
    if not isinstance(audio, bool):
        raise invalid_request("'audio' must be a boolean.", "audio")
    aspect = body.get("aspect_ratio", "16:9")
    if aspect not in ASPECTS:
        raise invalid_request(
            f"Invalid 'aspect_ratio' {aspect!r}: must be one of 16:9, 9:16, 1:1.", "aspect_ratio"
        )

    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid_request("'metadata' must be an object.", "metadata")
    negative = metadata.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise invalid_request("'metadata.negative_prompt' must be a string.", "metadata.negative_prompt")
    if negative is not None and len(negative) > MAX_PROMPT:
        raise invalid_request(
            f"'metadata.negative_prompt' must be at most {MAX_PROMPT} characters.", "metadata.negative_prompt"
        )
    watermark = metadata.get("watermark")
    if watermark is not None and not isinstance(watermark, bool):
        raise invalid_request("'metadata.watermark' must be a boolean.", "metadata.watermark")

    first, last, refs = _images(body, metadata)
    if len(refs) > MAX_REFERENCES:
        raise invalid_request(f"At most {MAX_REFERENCES} reference images (got {len(refs)}).",
                              "reference_images")
    v1_images = bool(body.get("image_urls")) or metadata.get("last_frame_image") is not None
    if duration > 10 and (first or last or refs) and (not latest or v1_images):
        raise invalid_request(
            "15-second duration is text-to-video only; image-to-video max is 10 seconds.", "duration"
        )
    if duration == 15 and mode == "pro" and not allow_pro_15:
        raise invalid_request("15-second duration is available in std mode only.", "duration")
    return ClipRequest(
        prompt=prompt,
        mode=mode,
        duration=duration,
        aspect=aspect,
        first_image=first,
        last_image=last,
        negative_prompt=negative,
        watermark=watermark,
        references=refs,
        audio=audio,
    )


def _images(body: dict, metadata: dict) -> tuple[str | None, str | None, tuple[str, ...]]:
    """V1 `image_urls` (+ metadata.last_frame_image) and V3/V4 `image_with_roles` / `reference_images`."""
    frames: list[str] = []
    urls = body.get("image_urls")
    if urls is not None:
        if not isinstance(urls, list):
            raise invalid_request("'image_urls' must be an array of URLs.", "image_urls")
        if len(urls) > MAX_FRAME_IMAGES:
            raise invalid_request(
                f"Maximum {MAX_FRAME_IMAGES} images supported in 'image_urls' (got {len(urls)}).",
                "image_urls",
            )
        frames = [_check_url(u, f"image_urls[{i}]") for i, u in enumerate(urls)]
    first = frames[0] if frames else None
    last = frames[1] if len(frames) > 1 else None
    lfi = metadata.get("last_frame_image")
    if lfi is not None:
        if last is not None:
            raise invalid_request(
                "Maximum 2 images supported: 'metadata.last_frame_image' and a second "
                "'image_urls' entry both set the last frame.",
                "metadata.last_frame_image",
            )
        last = _check_url(lfi, "metadata.last_frame_image")

    refs: list[str] = []
    roles = body.get("image_with_roles")
    if roles is not None:
        if not isinstance(roles, list):
            raise invalid_request("'image_with_roles' must be an array of {url, role}.", "image_with_roles")
        for i, item in enumerate(roles):
            param = f"image_with_roles[{i}]"
            if not isinstance(item, dict) or item.get("role") not in ROLES:
                raise invalid_request(f"'{param}' needs a 'url' and a 'role' in {', '.join(ROLES)}.", param)
            url = _check_url(item.get("url"), f"{param}.url")
            if item["role"] == "first_frame":
                if first is not None:
                    raise invalid_request("Only one first frame can be given.", param)
                first = url
            elif item["role"] == "last_frame":
                if last is not None:
                    raise invalid_request("Only one last frame can be given.", param)
                last = url
            else:
                refs.append(url)
    ref_list = body.get("reference_images")
    if ref_list is not None:
        if not isinstance(ref_list, list):
            raise invalid_request("'reference_images' must be an array of URLs.", "reference_images")
        refs.extend(_check_url(u, f"reference_images[{i}]") for i, u in enumerate(ref_list))
    return first, last, tuple(refs)
