"""The kling-v3 request contract: seed-page bodies, every validation rule, image checks, cost estimates."""
from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from lib.contract import (
    ASPECTS,
    DURATIONS,
    FIFTEEN_WITH_IMAGES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MODES,
    RESOLUTION,
    Prices,
    Problem,
    TooManyPixels,
    VideoRequest,
    check_image,
    estimate_cost,
    forbidden_reason,
    format_estimate,
    image_info,
    validate,
)
from tests.fixtures.bombs import bomb_png

# The five use-case bodies of the seed page (docs/kling-v3-generation.md), copied verbatim.
SEED_BODIES = [
    """{
  "model": "kling-v3",
  "prompt": "A golden cat running on a sunlit meadow, slow motion, cinematic quality",
  "mode": "std",
  "duration": 5,
  "aspect_ratio": "16:9"
}""",
    """{
  "model": "kling-v3",
  "prompt": "Tokyo Shibuya crossing at night, neon lights reflected on wet ground, people walking with umbrellas",
  "metadata": {
    "negative_prompt": "blurry, low quality, distorted"
  },
  "mode": "pro",
  "duration": 10,
  "aspect_ratio": "16:9"
}""",  # noqa: E501 (verbatim from the seed page)
    """{
  "model": "kling-v3",
  "prompt": "Time-lapse of a flower blooming in a garden",
  "duration": 15,
  "aspect_ratio": "16:9"
}""",
    """{
  "model": "kling-v3",
  "prompt": "The person in the frame turns and smiles",
  "image_urls": ["https://example.com/portrait.jpg"],
  "mode": "std",
  "duration": 5
}""",
    """{
  "model": "kling-v3",
  "prompt": "City timelapse transitioning from day to night",
  "image_urls": ["https://example.com/day-city.jpg", "https://example.com/night-city.jpg"],
  "mode": "pro",
  "duration": 5
}""",
]

SEED_REQUESTS = [
    VideoRequest("A golden cat running on a sunlit meadow, slow motion, cinematic quality",
                 mode="std", duration=5, aspect_ratio="16:9"),
    VideoRequest("Tokyo Shibuya crossing at night, neon lights reflected on wet ground, "
                 "people walking with umbrellas",
                 mode="pro", duration=10, aspect_ratio="16:9",
                 negative_prompt="blurry, low quality, distorted"),
    VideoRequest("Time-lapse of a flower blooming in a garden", duration=15, aspect_ratio="16:9"),
    VideoRequest("The person in the frame turns and smiles", mode="std", duration=5,
                 image_urls=("https://example.com/portrait.jpg",)),
    VideoRequest("City timelapse transitioning from day to night", mode="pro", duration=5,
                 image_urls=["https://example.com/day-city.jpg", "https://example.com/night-city.jpg"]),
]


@pytest.mark.parametrize(("req", "body"), list(zip(SEED_REQUESTS, SEED_BODIES, strict=True)),
                         ids=[f"case{i + 1}" for i in range(5)])
def test_payload_equals_seed_body_with_key_order(req: VideoRequest, body: str) -> None:
    expected = json.loads(body)
    payload = req.to_payload()
    assert payload == expected
    # Same keys in the same order at every level (dict equality ignores order).
    assert json.dumps(payload) == json.dumps(expected)
    assert validate(req) == []


def test_watermark_goes_into_metadata_after_negative_prompt() -> None:
    req = VideoRequest("p", negative_prompt="blur", watermark=False)
    assert json.dumps(req.to_payload()) == json.dumps(
        {"model": "kling-v3", "prompt": "p", "metadata": {"negative_prompt": "blur", "watermark": False}}
    )


def test_unset_fields_are_not_sent() -> None:
    assert VideoRequest("just a prompt").to_payload() == {"model": "kling-v3", "prompt": "just a prompt"}
    assert "metadata" not in VideoRequest("p", negative_prompt="   ").to_payload()


def test_effective_defaults() -> None:
    req = VideoRequest("p")
    assert (req.effective_mode, req.effective_duration, req.effective_aspect) == ("std", 5, "16:9")
    assert req.resolution == (1280, 720)


def test_resolution_table() -> None:
    assert RESOLUTION == {
        ("std", "16:9"): (1280, 720), ("std", "9:16"): (720, 1280), ("std", "1:1"): (720, 720),
        ("pro", "16:9"): (1920, 1080), ("pro", "9:16"): (1080, 1920), ("pro", "1:1"): (1080, 1080),
    }


# ---------------------------------------------------------------- validation table

A = "https://example.com/a.jpg"
B = "https://example.com/b.jpg"
NO_SCHEME = "upload the image and use the public URL it gives you."

VALIDATION_CASES = [
    ("empty prompt", VideoRequest(""), "prompt",
     "The prompt is empty — describe the scene, the action and the style you want."),
    ("whitespace prompt", VideoRequest(" \n\t "), "prompt",
     "The prompt is empty — describe the scene, the action and the style you want."),
    ("prompt 2501", VideoRequest("x" * 2501), "prompt",
     "The prompt is too long: 2,501 / 2,500 characters — shorten it by 1 character."),
    ("prompt 3000", VideoRequest("x" * 3000), "prompt",
     "The prompt is too long: 3,000 / 2,500 characters — shorten it by 500 characters."),
    ("negative prompt 2501", VideoRequest("p", negative_prompt="n" * 2501), "negative_prompt",
     "The negative prompt is too long: 2,501 / 2,500 characters — shorten it by 1 character."),
    ("unknown mode", VideoRequest("p", mode="ultra"), "mode",
     "Mode 'ultra' is not available — choose std (720p) or pro (1080p)."),
    ("mode 4k", VideoRequest("p", mode="4k"), "mode",
     "Mode '4k' is not available — choose std (720p) or pro (1080p)."),
    ("unknown duration", VideoRequest("p", duration=7), "duration",
     "Duration 7 s is not available — choose 5, 10 or 15 s."),
    ("duration as text", VideoRequest("p", duration="5"), "duration",  # type: ignore[arg-type]
     "Duration '5' s is not available — choose 5, 10 or 15 s."),
    ("duration bool", VideoRequest("p", duration=True), "duration",
     "Duration True s is not available — choose 5, 10 or 15 s."),
    ("unknown aspect", VideoRequest("p", aspect_ratio="4:3"), "aspect_ratio",
     "Aspect ratio '4:3' is not available — choose 16:9, 9:16 or 1:1."),
    ("15 s with first frame", VideoRequest("p", duration=15, image_urls=(A,)), "duration",
     FIFTEEN_WITH_IMAGES),
    ("15 s with two frames", VideoRequest("p", mode="pro", duration=15, image_urls=(A, B)), "duration",
     FIFTEEN_WITH_IMAGES),
    ("three images", VideoRequest("p", image_urls=(A, B, A)), "image_urls",
     "3 images given; kling-v3 takes at most 2 (first frame, or first + last frame) — remove 1."),
    ("data url", VideoRequest("p", image_urls=("data:image/png;base64,iVBORw0KGgo=",)), "first_frame",
     "The first frame is inline base64 data; kling-v3 does not accept base64 — upload the image first and "
     "use the URL it gives you."),
    ("raw base64", VideoRequest("p", image_urls=(A, "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgMCAgMDAwMEAwME")),
     "last_frame",
     "The last frame is inline base64 data; kling-v3 does not accept base64 — upload the image first and "
     "use the URL it gives you."),
    ("file url", VideoRequest("p", image_urls=("file:///etc/passwd",)), "first_frame",
     f"The first frame URL must start with http:// or https:// (got file:) — {NO_SCHEME}"),
    ("ftp url", VideoRequest("p", image_urls=(A, "ftp://example.com/b.jpg")), "last_frame",
     f"The last frame URL must start with http:// or https:// (got ftp:) — {NO_SCHEME}"),
    ("javascript url", VideoRequest("p", image_urls=("javascript:alert(1)",)), "first_frame",
     f"The first frame URL must start with http:// or https:// (got javascript:) — {NO_SCHEME}"),
    ("relative path", VideoRequest("p", image_urls=("images/a.jpg",)), "first_frame",
     f"The first frame URL must start with http:// or https:// (got no scheme) — {NO_SCHEME}"),
    ("no host", VideoRequest("p", image_urls=("https:///a.jpg",)), "first_frame",
     "The first frame URL has no host name — use a full public URL such as https://example.com/frame.jpg."),
    ("scheme only", VideoRequest("p", image_urls=("http://",)), "first_frame",
     "The first frame URL has no host name — use a full public URL such as https://example.com/frame.jpg."),
    ("space in url", VideoRequest("p", image_urls=("https://example.com/my frame.jpg",)), "first_frame",
     "The first frame URL contains spaces or line breaks — remove them (write a space inside a URL as %20)."),
    ("newline in url", VideoRequest("p", image_urls=(A, B + "\n")), "last_frame",
     "The last frame URL contains spaces or line breaks — remove them (write a space inside a URL as %20)."),
    ("empty url", VideoRequest("p", image_urls=("",)), "first_frame",
     "The first frame URL is empty — upload an image or remove the first frame."),
    ("watermark not bool", VideoRequest("p", watermark="yes"), "watermark",  # type: ignore[arg-type]
     "Watermark must be on or off (true/false), not 'yes'."),
]


@pytest.mark.parametrize(("req", "field", "message"), [c[1:] for c in VALIDATION_CASES],
                         ids=[c[0] for c in VALIDATION_CASES])
def test_validation_rule(req: VideoRequest, field: str, message: str) -> None:
    problems = validate(req)
    assert Problem(field, message) in problems
    assert all(p.level == "error" for p in problems)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("duration", DURATIONS)
@pytest.mark.parametrize("aspect", ASPECTS)
def test_every_text_to_video_combo_is_valid(mode: str, duration: int, aspect: str) -> None:
    """pro + 15 s text-to-video included: the seed page's prose allows 15 s for any text-to-video."""
    assert validate(VideoRequest("a fox", mode=mode, duration=duration, aspect_ratio=aspect)) == []
    assert forbidden_reason(mode, duration, 0) is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("duration", [5, 10])
@pytest.mark.parametrize("images", [(A,), (A, B)])
def test_image_to_video_up_to_10_s_is_valid(mode: str, duration: int, images: tuple[str, ...]) -> None:
    assert validate(VideoRequest("a fox", mode=mode, duration=duration, image_urls=images)) == []
    assert forbidden_reason(mode, duration, len(images)) is None


def test_prompt_of_exactly_2500_is_fine() -> None:
    assert validate(VideoRequest("x" * 2500, negative_prompt="n" * 2500)) == []


def test_all_problems_at_once() -> None:
    req = VideoRequest(" ", mode="ultra", duration=15, aspect_ratio="4:3",
                       image_urls=("file:///etc/passwd", "data:image/png;base64,AAAA", A),
                       negative_prompt="n" * 2600)
    fields = [p.field for p in validate(req)]
    assert fields == ["prompt", "negative_prompt", "mode", "aspect_ratio", "duration", "image_urls",
                      "first_frame", "last_frame"]


def test_invalid_duration_does_not_also_claim_the_15_s_rule() -> None:
    problems = validate(VideoRequest("p", duration=20, image_urls=(A,)))
    assert [p.message for p in problems] == ["Duration 20 s is not available — choose 5, 10 or 15 s."]


@pytest.mark.parametrize(("mode", "duration", "n", "reason"), [
    ("std", 15, 1, FIFTEEN_WITH_IMAGES),
    ("pro", 15, 2, FIFTEEN_WITH_IMAGES),
    ("std", 5, 3, "At most 2 images (first frame, or first + last frame)."),
    ("hd", 5, 0, "Mode 'hd' is not available — choose std (720p) or pro (1080p)."),
    ("std", 8, 0, "Duration 8 s is not available — choose 5, 10 or 15 s."),
])
def test_forbidden_reason(mode: str, duration: int, n: int, reason: str) -> None:
    assert forbidden_reason(mode, duration, n) == reason


# ---------------------------------------------------------------- image checks (real files made here)

def _image(fmt: str, size: tuple[int, int] = (640, 480), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 120, 40)).save(buf, fmt)
    return buf.getvalue()


def _jpeg_of_size(total: int) -> bytes:
    """A valid JPEG of exactly `total` bytes, padded with COM segments (each at most 65,533 payload bytes)."""
    jpeg = _image("JPEG", (800, 600))
    pad = total - len(jpeg)
    segments = []
    while pad > 0:
        body = min(65533, pad - 4)
        if 0 < pad - (body + 4) < 4:  # never leave a remainder too small for a segment header
            body -= 4
        segments.append(b"\xff\xfe" + (body + 2).to_bytes(2, "big") + b"\x00" * body)
        pad -= body + 4
    data = jpeg[:2] + b"".join(segments) + jpeg[2:]
    assert len(data) == total
    return data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_good_images_pass(fmt: str) -> None:
    data = _image(fmt, (1280, 720))
    assert check_image(data) == []
    assert image_info(data) == (fmt, 1280, 720)


@pytest.mark.parametrize(("fmt", "name"), [("WEBP", "WebP"), ("GIF", "GIF")])
def test_webp_and_gif_only_warn(fmt: str, name: str) -> None:
    problems = check_image(_image(fmt, (720, 720)), "last_frame")
    assert problems == [Problem(
        "last_frame",
        f"The last frame is a {name} image: the upload accepts it, but Kling may reject it when the video "
        "is generated — convert it to JPEG or PNG to be safe.",
        level="warning",
    )]


def test_text_file_named_jpg_is_refused_by_content() -> None:
    data = b"Not an image at all, even if it is called photo.jpg\n" * 20
    assert check_image(data) == [Problem(
        "first_frame",
        "The first frame is not a JPEG or PNG image (judged by its content, whatever its file name "
        "says) — choose a JPEG or PNG image.",
    )]
    with pytest.raises(ValueError, match="not a readable image"):
        image_info(data)


def test_bmp_is_refused() -> None:
    assert check_image(_image("BMP")) == [Problem(
        "first_frame",
        "The first frame is a BMP image; kling-v3 takes JPEG or PNG — convert it and try again.")]


def test_empty_file() -> None:
    assert check_image(b"") == [
        Problem("first_frame", "The first frame file is empty — choose a JPEG or PNG image.")]


def test_over_10_mb_jpeg_is_refused_with_its_size() -> None:
    data = _jpeg_of_size(11 * 1024 * 1024 + 123)
    assert len(data) > MAX_IMAGE_BYTES
    assert image_info(data) == ("JPEG", 800, 600)  # still a valid image: size is the only problem
    problems = check_image(data)
    mb = f"{len(data) / 1e6:.1f}"
    assert problems == [Problem(
        "first_frame",
        f"The first frame is {mb} MB ({len(data):,} bytes); the limit is 10 MB — resize or compress it "
        "(a JPEG at quality 85 is usually far smaller).",
    )]
    assert mb.startswith("11.")


def test_over_10_mb_noise_png_is_refused() -> None:
    rnd = random.Random(7)
    img = Image.frombytes("RGB", (2000, 1900), rnd.randbytes(2000 * 1900 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    data = buf.getvalue()
    assert len(data) > MAX_IMAGE_BYTES
    assert [p.message.split(";")[0] for p in check_image(data)] == [
        f"The first frame is {len(data) / 1e6:.1f} MB ({len(data):,} bytes)"]


def test_the_size_rule_is_the_browser_s_10_mb() -> None:
    """Streamlit's uploader (outside Windows) refuses files over 10 × 1,000,000 bytes as "10.0MB"."""
    assert MAX_IMAGE_BYTES == 10_000_000


@pytest.mark.parametrize(("size", "ok"), [(MAX_IMAGE_BYTES, True), (MAX_IMAGE_BYTES + 1, False)])
def test_10_mb_boundary(size: int, ok: bool) -> None:
    data = _jpeg_of_size(size)
    assert image_info(data) == ("JPEG", 800, 600)
    assert (check_image(data) == []) is ok


def test_a_decompression_bomb_is_refused_from_its_header_in_words() -> None:
    bomb = bomb_png()  # 13,000 × 13,000: over Pillow's own hard limit (2 × 40 MP) as well
    Image.core.reset_stats()
    assert check_image(bomb) == [Problem(
        "first_frame",
        "The first frame is 169 megapixels; the limit is 40 megapixels, so it was not opened — resize it "
        "(4,000 px on the long side is plenty for a 1080p video).")]
    with pytest.raises(TooManyPixels):
        image_info(bomb)
    mid = bomb_png(7000, 7000, "L")  # 49 MP: over our limit, under Pillow's
    assert [p.message for p in check_image(mid, "last_frame")] == [
        "The last frame is 7,000×7,000 px (49 megapixels); the limit is 40 megapixels, so it was not opened "
        "— resize it (4,000 px on the long side is plenty for a 1080p video)."]
    assert Image.core.get_stats()["allocated_blocks"] == 0  # not one pixel decoded
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS == 40_000_000
    assert image_info(bomb_png(6000, 6000, "L")) == ("PNG", 6000, 6000)  # 36 MP: allowed


def test_too_small_image() -> None:
    assert check_image(_image("PNG", (200, 200))) == [Problem(
        "first_frame",
        "The first frame is 200×200 px; width and height must each be at least 300 px — use a larger image.")]


@pytest.mark.parametrize("size", [(300, 300), (750, 300), (300, 750)])
def test_minimum_and_extreme_allowed_shapes(size: tuple[int, int]) -> None:
    assert check_image(_image("JPEG", size)) == []


@pytest.mark.parametrize(("size", "text"), [
    ((3000, 500), "3000×500 px, 6.00:1 — too wide"),
    ((500, 1300), "500×1300 px, 2.60:1 — too tall"),
])
def test_aspect_out_of_range(size: tuple[int, int], text: str) -> None:
    assert check_image(_image("JPEG", size)) == [Problem(
        "first_frame",
        f"The first frame is {text}; the aspect must be between 1:2.5 and 2.5:1 — crop it closer to the "
        "video's aspect ratio.")]


def test_small_and_narrow_reports_both() -> None:
    assert [p.message.split(";")[0] for p in check_image(_image("PNG", (1000, 200)))] == [
        "The first frame is 1000×200 px", "The first frame is 1000×200 px, 5.00:1 — too wide"]


# ---------------------------------------------------------------- cost

@pytest.mark.parametrize(("req", "usd", "text"), [
    (VideoRequest("p"), 0.184, "≈ $0.18 (estimate)"),
    (VideoRequest("p", mode="std", duration=10), 0.368, "≈ $0.37 (estimate)"),
    (VideoRequest("p", mode="std", duration=15), 0.552, "≈ $0.55 (estimate)"),
    (VideoRequest("p", mode="pro", duration=5), 0.3125, "≈ $0.31 (estimate)"),
    (VideoRequest("p", mode="pro", duration=10), 0.625, "≈ $0.63 (estimate)"),  # half up (lib.money)
    (VideoRequest("p", mode="pro", duration=15), 0.9375, "≈ $0.94 (estimate)"),
])
def test_estimate_cost_default_prices(req: VideoRequest, usd: float, text: str) -> None:
    assert estimate_cost(req, Prices()) == pytest.approx(usd)
    assert format_estimate(estimate_cost(req, Prices())) == text


def test_estimate_cost_custom_prices() -> None:
    req = VideoRequest("p", mode="pro", duration=10)
    assert estimate_cost(req, Prices(std=0.1, pro=0.2)) == pytest.approx(2.0)
    assert format_estimate(1234.5) == "≈ $1,234.50 (estimate)"


@pytest.mark.parametrize("req", [VideoRequest("p", mode="ultra"), VideoRequest("p", duration=7)])
def test_estimate_cost_refuses_invalid_requests(req: VideoRequest) -> None:
    with pytest.raises(ValueError, match="choose"):
        estimate_cost(req, Prices())


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf")])
def test_prices_must_be_sane(bad: float) -> None:
    with pytest.raises(ValueError, match="non-negative number of USD per second"):
        Prices(std=bad)


# ---------------------------------------------------------------- dict round-trip

@pytest.mark.parametrize("req", [*SEED_REQUESTS, VideoRequest("p", watermark=True, negative_prompt="n"),
                                 VideoRequest("p", watermark=False)])
def test_dict_round_trip(req: VideoRequest) -> None:
    d = req.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert VideoRequest.from_dict(json.loads(json.dumps(d))) == req


def test_from_dict_is_tolerant() -> None:
    assert VideoRequest.from_dict({"prompt": "p"}) == VideoRequest("p")
    assert VideoRequest.from_dict({}) == VideoRequest("")
    got = VideoRequest.from_dict({"prompt": "p", "image_urls": [A, B], "duration": "10", "extra": 1})
    assert got == VideoRequest("p", duration=10, image_urls=(A, B))
    assert got.image_urls == (A, B)
    assert VideoRequest.from_dict({"prompt": "p", "image_urls": None}).image_urls == ()


def test_from_dict_reads_a_gateway_payload() -> None:
    req = SEED_REQUESTS[1].replace(watermark=True)
    assert VideoRequest.from_dict(req.to_payload()) == req


def test_replace_and_hashable() -> None:
    req = SEED_REQUESTS[3]
    assert req.replace(mode="pro").mode == "pro"
    assert hash(req) == hash(VideoRequest.from_dict(req.to_dict()))
