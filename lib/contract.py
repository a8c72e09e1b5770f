"""The kling-v3 request contract (ToAPIs V1 page, and the newest page behind TOAPIS_CONTRACT=latest).

Two versions of the page (docs/api-contract.md §3.1, §3.2): "v1", the seed, is what is sent by default;
"latest" (V4) adds `audio` (billed as Sound), every duration 3–15 s with no image-to-video limit, and
reference images beside frames given with roles. A request carries the contract it was made under, so
its payload, its price and a later reader of the ledger all agree on which fields it may hold.

Everything here is pure and local: it runs before a cent is spent, so each refusal says in words what is
wrong and what to do. `to_payload()` reproduces the documented JSON exactly (only the fields that were set,
in the page's key order), because the gateway applies its own defaults to anything left out.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from PIL import Image

from lib.image_type import PixelBomb, read_header
from lib.query import ascii_int

MODEL = "kling-v3"
MODES = ("std", "pro")
DURATIONS = (5, 10, 15)
V1, LATEST = "v1", "latest"
CONTRACTS = (V1, LATEST)
# The newest page: "Options: 3, 4, 5, … 15" (every integer), and no image-to-video limit any more.
LATEST_DURATIONS = tuple(range(3, 16))
# The newest page sets no count; more references than frames only dilute what each one steers.
MAX_REFERENCES = 4
REFERENCE_ROLE = "reference"
LATEST_ONLY_WORDS = "made with the latest contract; this app sends v1"
ASPECTS = ("16:9", "9:16", "1:1")
DEFAULT_MODE = "std"
DEFAULT_DURATION = 5
DEFAULT_ASPECT = "16:9"
MAX_PROMPT = 2500
MAX_IMAGES = 2
# One size rule everywhere: .streamlit/config.toml's server.maxUploadSize, the uploaders' shown limit, their
# tooltips and our words. Streamlit counts this limit in MB; browsers outside Windows enforce it as
# decimal megabytes (10,000,000 bytes, shown as "10.0MB"), so our own check uses the same bytes.
MAX_IMAGE_MB = 10
MAX_IMAGE_BYTES = MAX_IMAGE_MB * 1_000_000
# About 40 megapixels: far above anything a 1080p video needs, far below what a few hundred KB of PNG can
# unpack to (13,000 × 13,000 = 169 MP = 676 MB of RGBA). Checked from the header, before any decoding.
MAX_IMAGE_PIXELS = 40_000_000
# Pillow's own guard, process-wide: Image.open refuses anything over twice this (and warns above it), so
# even a decode path that skips our header check cannot unpack a bomb.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
MIN_IMAGE_SIDE = 300
MAX_IMAGE_RATIO = 2.5
MAX_I2V_DURATION = 10

# (mode, aspect) -> (width, height) of the video the gateway returns.
RESOLUTION: dict[tuple[str, str], tuple[int, int]] = {
    ("std", "16:9"): (1280, 720),
    ("std", "9:16"): (720, 1280),
    ("std", "1:1"): (720, 720),
    ("pro", "16:9"): (1920, 1080),
    ("pro", "9:16"): (1080, 1920),
    ("pro", "1:1"): (1080, 1080),
}

# One list of formats everywhere: the uploaders' file types, their tooltip and our words.
IMAGE_FORMATS_TEXT = "JPEG or PNG"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
# The uploaders' tooltip on every page: the same numbers as the checks below.
IMAGE_RULES_TEXT = (f"{IMAGE_FORMATS_TEXT}, at least {MIN_IMAGE_SIDE} px a side, aspect between 1:2.5 and "
                    f"2.5:1, up to {MAX_IMAGE_MB} MB and {MAX_IMAGE_PIXELS // 1_000_000} megapixels.")

MODE_LABELS = {"std": "std (720p)", "pro": "pro (1080p)"}
IMAGE_FIELDS = ("first_frame", "last_frame")

FIFTEEN_WITH_IMAGES = (
    "15 s is text-to-video only; image-to-video max is 10 s — pick 5 or 10 s or remove the images"
)

_OK_FORMATS = ("JPEG", "PNG")
_RISKY_FORMATS = ("WEBP", "GIF")
_FORMAT_NAMES = {"WEBP": "WebP"}
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/_=\-\s]+$")


def _or(options: tuple[Any, ...], unit: str = "") -> str:
    """'5, 10 or 15 s': option lists read as a sentence in messages."""
    words = [f"{o}" for o in options]
    text = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
    return f"{text}{unit}"


@dataclass(frozen=True)
class VideoRequest:
    """One kling-v3 generation request; None means "not sent" so the gateway's default applies."""

    prompt: str
    mode: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    image_urls: tuple[str, ...] = ()
    negative_prompt: str | None = None
    watermark: bool | None = None
    audio: bool | None = None          # latest only: "true - audio video, billed as Sound"
    references: tuple[str, ...] = ()   # latest only: reference images (not frames)
    contract: str = V1

    def __post_init__(self) -> None:
        # Callers (forms, JSON, ledger rows) hand over lists; a tuple keeps the request hashable.
        for name in ("image_urls", "references"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, () if value is None else tuple(value))

    @property
    def uses_latest_fields(self) -> bool:
        """Sound or reference images: fields a v1 gateway was never sent."""
        return self.audio is not None or bool(self.references)

    @property
    def effective_mode(self) -> str:
        return DEFAULT_MODE if self.mode is None else self.mode

    @property
    def effective_duration(self) -> int:
        return DEFAULT_DURATION if self.duration is None else self.duration

    @property
    def effective_aspect(self) -> str:
        return DEFAULT_ASPECT if self.aspect_ratio is None else self.aspect_ratio

    @property
    def resolution(self) -> tuple[int, int] | None:
        """Expected output size, or None when mode/aspect are not valid."""
        return RESOLUTION.get((self.effective_mode, self.effective_aspect))

    def to_payload(self) -> dict[str, Any]:
        """The JSON body for POST /v1/videos/generations, in the seed page's key order."""
        body: dict[str, Any] = {"model": MODEL, "prompt": self.prompt}
        latest = self.contract == LATEST
        if latest and self.references:
            body["reference_images"] = list(self.references)
        if latest and self.image_urls:
            # the newest page replaced image_urls: frames are named by role, never inferred by position
            body["image_with_roles"] = [{"url": url, "role": role}
                                        for url, role in zip(self.image_urls, IMAGE_FIELDS, strict=False)]
        elif self.image_urls:
            body["image_urls"] = list(self.image_urls)
        if latest and self.audio is not None:
            body["audio"] = self.audio
        metadata: dict[str, Any] = {}
        negative = self.negative_prompt
        if negative is not None and (not isinstance(negative, str) or negative.strip()):
            metadata["negative_prompt"] = negative  # a non-string goes as it is: the gateway refuses it too
        if self.watermark is not None:
            metadata["watermark"] = self.watermark
        if metadata:
            body["metadata"] = metadata
        if self.mode is not None:
            body["mode"] = self.mode
        if self.duration is not None:
            body["duration"] = self.duration
        if self.aspect_ratio is not None:
            body["aspect_ratio"] = self.aspect_ratio
        return body

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-safe form for the ledger; keeps None so "not sent" survives a round trip."""
        return {
            "prompt": self.prompt,
            "mode": self.mode,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
            "image_urls": list(self.image_urls),
            "negative_prompt": self.negative_prompt,
            "watermark": self.watermark,
            # only when set: a v1 run's stored settings stay exactly what they always were
            **({"contract": self.contract} if self.contract != V1 else {}),
            **({"audio": self.audio} if self.audio is not None else {}),
            **({"references": list(self.references)} if self.references else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VideoRequest:
        """Read to_dict() output, an older/partial row, or a gateway payload (metadata nested)."""
        meta = m if isinstance(m := d.get("metadata"), Mapping) else {}
        duration = d.get("duration")
        if isinstance(duration, str) and (number := ascii_int(duration)) is not None:
            duration = number  # "10" from an older row; never "²", which isdigit() accepts and int() refuses
        urls = d.get("image_urls") or ()
        if isinstance(urls, str):
            urls = (urls,)
        refs = d.get("references", d.get("reference_images")) or ()
        roles = d.get("image_with_roles")
        if isinstance(roles, list) and not urls:  # a latest payload: frames by role, references beside
            by_role = {r.get("role"): r.get("url") for r in roles if isinstance(r, Mapping)}
            urls = tuple(u for u in (by_role.get("first_frame"), by_role.get("last_frame")) if u)
            refs = (*([refs] if isinstance(refs, str) else refs),
                    *(r.get("url") for r in roles if isinstance(r, Mapping)
                      and r.get("role") in ("reference", "reference_image")))
        if isinstance(refs, str):
            refs = (refs,)
        latest = d.get("contract") == LATEST or (d.get("contract") is None and any(
            k in d for k in ("audio", "references", "reference_images", "image_with_roles")))
        return cls(
            prompt=d.get("prompt") or "",
            mode=d.get("mode"),
            duration=duration,
            aspect_ratio=d.get("aspect_ratio"),
            image_urls=tuple(urls),
            negative_prompt=d.get("negative_prompt", meta.get("negative_prompt")),
            watermark=d.get("watermark", meta.get("watermark")),
            audio=d.get("audio"),
            references=tuple(refs),
            contract=LATEST if latest else V1,
        )

    def replace(self, **kw: Any) -> VideoRequest:
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request or file: the field it belongs to and what to do about it."""

    field: str
    message: str
    level: Literal["error", "warning"] = "error"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def durations_for(contract: str) -> tuple[int, ...]:
    """The durations a contract offers: 5/10/15 s on the seed page, every second 3–15 on the newest."""
    return LATEST_DURATIONS if contract == LATEST else DURATIONS


def i2v_limit(contract: str) -> int | None:
    """The longest video with images: 10 s on the seed page; the newest page has no such rule."""
    return None if contract == LATEST else MAX_I2V_DURATION


def _durations_text(contract: str) -> str:
    return "3 to 15 s (whole seconds)" if contract == LATEST else _or(DURATIONS, " s")


def forbidden_reason(mode: str, duration: int, n_images: int, contract: str = V1) -> str | None:
    """Why this combination cannot be generated (for UIs that disable it), or None if it can."""
    if mode not in MODES:
        return f"Mode {mode!r} is not available — choose {_or(tuple(MODE_LABELS.values()))}."
    if not _is_int(duration) or duration not in durations_for(contract):
        return f"Duration {duration!r} s is not available — choose {_durations_text(contract)}."
    if n_images > MAX_IMAGES:
        return f"At most {MAX_IMAGES} images (first frame, or first + last frame)."
    limit = i2v_limit(contract)
    if limit is not None and duration > limit and n_images > 0:
        return FIFTEEN_WITH_IMAGES
    return None


def _count(n: int, limit: int) -> str:
    return f"{n:,} / {limit:,}"


def _text_problems(name: str, label: str, value: Any) -> list[Problem]:
    if not isinstance(value, str):
        return [Problem(name, f"The {label} must be text (got {type(value).__name__}).")]
    if len(value) > MAX_PROMPT:
        over = len(value) - MAX_PROMPT
        return [Problem(
            name,
            f"The {label} is too long: {_count(len(value), MAX_PROMPT)} characters — "
            f"shorten it by {over:,} character{'s' if over != 1 else ''}.",
        )]
    return []


def _url_problem(name: str, label: str, url: Any) -> Problem | None:
    """At most one problem per image URL: the most useful thing to fix first."""
    if not isinstance(url, str):
        return Problem(name, f"The {label} must be a URL (got {type(url).__name__}).")
    if not url.strip():
        return Problem(name, f"The {label} URL is empty — upload an image or remove the {label}.")
    if url.strip().lower().startswith("data:") or (
        "://" not in url and len(url) >= 32 and _BASE64_RE.match(url)
    ):
        return Problem(
            name,
            f"The {label} is inline base64 data; kling-v3 does not accept base64 — "
            "upload the image first and use the URL it gives you.",
        )
    if any(ch.isspace() for ch in url):
        return Problem(
            name,
            f"The {label} URL contains spaces or line breaks — remove them "
            "(write a space inside a URL as %20).",
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        got = f"{parts.scheme}:" if parts.scheme else "no scheme"
        return Problem(
            name,
            f"The {label} URL must start with http:// or https:// (got {got}) — "
            "upload the image and use the public URL it gives you.",
        )
    if not parts.hostname:
        return Problem(name, f"The {label} URL has no host name — use a full public URL such as "
                             "https://example.com/frame.jpg.")
    return None


def validate(req: VideoRequest) -> list[Problem]:
    """Every problem with the request at once, before anything is uploaded or spent."""
    problems: list[Problem] = []
    if isinstance(req.prompt, str) and not req.prompt.strip():
        problems.append(Problem("prompt", "The prompt is empty — describe the scene, the action and the "
                                          "style you want."))
    else:
        problems += _text_problems("prompt", "prompt", req.prompt)
    if req.negative_prompt is not None:
        problems += _text_problems("negative_prompt", "negative prompt", req.negative_prompt)

    if req.mode is not None and req.mode not in MODES:
        problems.append(Problem("mode", f"Mode {req.mode!r} is not available — choose "
                                        f"{_or(tuple(MODE_LABELS.values()))}."))
    allowed = durations_for(req.contract)
    duration_ok = req.duration is None or (_is_int(req.duration) and req.duration in allowed)
    if not duration_ok:
        problems.append(Problem("duration", f"Duration {req.duration!r} s is not available — choose "
                                            f"{_durations_text(req.contract)}."))
    if req.aspect_ratio is not None and req.aspect_ratio not in ASPECTS:
        problems.append(Problem("aspect_ratio", f"Aspect ratio {req.aspect_ratio!r} is not available — "
                                                f"choose {_or(ASPECTS)}."))

    n = len(req.image_urls)
    limit = i2v_limit(req.contract)
    if duration_ok and n and limit is not None and req.effective_duration > limit:
        problems.append(Problem("duration", FIFTEEN_WITH_IMAGES))
    if n > MAX_IMAGES:
        extra = n - MAX_IMAGES
        problems.append(Problem(
            "image_urls",
            f"{n} images given; kling-v3 takes at most {MAX_IMAGES} (first frame, or first + last frame) — "
            f"remove {extra}.",
        ))
    for i, url in enumerate(req.image_urls):
        name = IMAGE_FIELDS[i] if i < len(IMAGE_FIELDS) else f"image_urls[{i}]"
        label = name.replace("_", " ") if i < len(IMAGE_FIELDS) else f"image {i + 1}"
        problem = _url_problem(name, label, url)
        if problem:
            problems.append(problem)

    if req.watermark is not None and not isinstance(req.watermark, bool):
        problems.append(Problem("watermark", "Watermark must be on or off (true/false), "
                                             f"not {req.watermark!r}."))
    problems += _latest_problems(req)
    return problems


def _latest_problems(req: VideoRequest) -> list[Problem]:
    """The newest page's fields: refused outright under v1 (never sent), checked under latest."""
    problems: list[Problem] = []
    if req.contract not in CONTRACTS:
        return [Problem("contract", f"Contract {str(req.contract)[:20]!r} is not one this app knows — "
                                    "use v1 or latest.")]
    if req.contract == V1:
        if req.audio is not None:
            problems.append(Problem("audio", "Sound is part of the latest kling-v3 contract; this app "
                                             "sends v1 — turn Sound off, or set TOAPIS_CONTRACT=latest."))
        if req.references:
            problems.append(Problem("references", "Reference images are part of the latest kling-v3 "
                                                  "contract; this app sends v1 — remove them, or set "
                                                  "TOAPIS_CONTRACT=latest."))
        return problems
    if req.audio is not None and not isinstance(req.audio, bool):
        problems.append(Problem("audio", f"Sound must be on or off (true/false), not {req.audio!r}."))
    if len(req.references) > MAX_REFERENCES:
        extra = len(req.references) - MAX_REFERENCES
        problems.append(Problem("references", f"{len(req.references)} reference images given; the "
                                              f"playground sends at most {MAX_REFERENCES} — remove {extra}."))
    for i, url in enumerate(req.references):
        problem = _url_problem("references", f"reference image {i + 1}", url)
        if problem:
            problems.append(problem)
    return problems


class TooManyPixels(ValueError):
    """An image whose header promises more than MAX_IMAGE_PIXELS: refused before any pixel is decoded."""

    def __init__(self, pixels: int | None, size: tuple[int, int] | None = None) -> None:
        self.pixels = pixels
        self.size = size
        super().__init__(f"image of {pixels or 'too many'} pixels is over the limit of {MAX_IMAGE_PIXELS:,}")


def image_info(data: bytes) -> tuple[str, int, int]:
    """(Pillow format name, width, height) read from the header alone; ValueError if not an image.

    Why header only: Image.open reads the size without decoding, so a 500 KB file that would unpack to
    gigabytes is measured, and refused (TooManyPixels), for the price of a few bytes.
    """
    try:
        fmt, width, height = read_header(data)
    except PixelBomb as exc:  # Pillow's own limit (twice ours) tripped while opening
        raise TooManyPixels(exc.pixels) from None
    if width * height > MAX_IMAGE_PIXELS:
        raise TooManyPixels(width * height, (width, height))
    return fmt, width, height


def too_many_pixels_message(label: str, err: TooManyPixels) -> str:
    """Words for an image refused by its pixel count (its size when the header gave it)."""
    limit = f"the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
    if err.size:
        width, height = err.size
        what = f"{width:,}×{height:,} px ({width * height / 1_000_000:,.0f} megapixels)"
    elif err.pixels:
        what = f"{err.pixels / 1_000_000:,.0f} megapixels"
    else:
        what = f"far more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
    return (f"The {label} is {what}; {limit}, so it was not opened — resize it (4,000 px on the long side "
            "is plenty for a 1080p video).")


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB ({n:,} bytes)"


def check_image(data: bytes, field: str = "first_frame") -> list[Problem]:
    """Local checks on an image file before it is uploaded: Kling's own limits, judged by content."""
    label = field.replace("_", " ")
    problems: list[Problem] = []
    if not data:
        return [Problem(field, f"The {label} file is empty — choose a JPEG or PNG image.")]
    if len(data) > MAX_IMAGE_BYTES:
        problems.append(Problem(
            field,
            f"The {label} is {_mb(len(data))}; the limit is {MAX_IMAGE_MB} MB — resize or compress it "
            "(a JPEG at quality 85 is usually far smaller).",
        ))
    try:
        fmt, width, height = image_info(data)
    except TooManyPixels as err:
        problems.append(Problem(field, too_many_pixels_message(label, err)))
        return problems
    except ValueError:
        problems.append(Problem(
            field,
            f"The {label} is not a {IMAGE_FORMATS_TEXT} image (judged by its content, whatever its "
            f"file name says) — choose a {IMAGE_FORMATS_TEXT} image.",
        ))
        return problems

    if fmt in _RISKY_FORMATS:
        problems.append(Problem(
            field,
            f"The {label} is a {_FORMAT_NAMES.get(fmt, fmt)} image: the upload accepts it, but "
            "Kling may reject it when the video is generated — convert it to JPEG or PNG to be safe.",
            level="warning",
        ))
    elif fmt not in _OK_FORMATS:
        problems.append(Problem(
            field,
            f"The {label} is a {fmt} image; kling-v3 takes JPEG or PNG — convert it and try again.",
        ))

    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        problems.append(Problem(
            field,
            f"The {label} is {width}×{height} px; width and height must each be at least "
            f"{MIN_IMAGE_SIDE} px — use a larger image.",
        ))
    ratio = max(width, height) / max(1, min(width, height))
    if ratio > MAX_IMAGE_RATIO:
        shape = "wide" if width > height else "tall"
        problems.append(Problem(
            field,
            f"The {label} is {width}×{height} px, {ratio:.2f}:1 — too {shape}; the aspect must be between "
            "1:2.5 and 2.5:1 — crop it closer to the video's aspect ratio.",
        ))
    return problems


@dataclass(frozen=True)
class Prices:
    """USD per second of video by mode.

    Defaults are ToAPIs' kling-2-6 figures (docs/api-contract.md §8): no kling-v3 price is published.
    """

    std: float = 0.0368
    pro: float = 0.0625
    # Added per second when Sound is on. The newest kling-v3 page names the tier ("billed as Sound") but
    # no price; kling-2-6's page bills pro with audio at $0.125/s against $0.0625/s without (§8).
    sound: float = 0.0625

    def __post_init__(self) -> None:
        for name in ("std", "pro", "sound"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"The {name} price must be a non-negative number of USD per second, "
                                 f"not {value!r}.")

    def per_second(self, mode: str) -> float:
        if mode not in MODES:
            raise ValueError(f"No price for mode {mode!r}; choose {_or(MODES)}.")
        return float(getattr(self, mode))


DEFAULT_PRICES = Prices()


def estimate_cost(req: VideoRequest, prices: Prices = DEFAULT_PRICES) -> float:
    """Estimated USD for one run: seconds × the per-second price of its mode, plus Sound when it is on.
    Not what the gateway bills."""
    duration = req.effective_duration
    if not _is_int(duration) or duration not in durations_for(req.contract):
        raise ValueError(f"Cannot estimate the cost of a {duration!r} s video; "
                         f"choose {_durations_text(req.contract)}.")
    return round(duration * prices.per_second(req.effective_mode) + sound_cost(req, prices), 6)


def sound_cost(req: VideoRequest, prices: Prices = DEFAULT_PRICES) -> float:
    """The Sound part of a run's estimate (0 without Sound), shown on its own beside every price."""
    if req.audio is not True or req.contract != LATEST or not _is_int(req.effective_duration):
        return 0.0
    return round(req.effective_duration * prices.sound, 6)


def format_estimate(usd: float) -> str:
    """Always say it is an estimate: the gateway's real bill may differ (lib.money rounds the cents)."""
    from lib import money

    return money.estimate(usd)


__all__ = [
    "ASPECTS",
    "CONTRACTS",
    "DEFAULT_PRICES",
    "DURATIONS",
    "FIFTEEN_WITH_IMAGES",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS_TEXT",
    "IMAGE_RULES_TEXT",
    "LATEST",
    "LATEST_DURATIONS",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_MB",
    "MAX_IMAGE_PIXELS",
    "MAX_PROMPT",
    "MAX_REFERENCES",
    "MODEL",
    "MODES",
    "RESOLUTION",
    "V1",
    "Prices",
    "Problem",
    "TooManyPixels",
    "VideoRequest",
    "check_image",
    "durations_for",
    "estimate_cost",
    "forbidden_reason",
    "format_estimate",
    "i2v_limit",
    "image_info",
    "sound_cost",
    "too_many_pixels_message",
    "validate",
]
