"""Two independent referees, one verdict: lib/contract.py (the app, before anything is spent) and the
embedded gateway's lib/local_gateway/validation.py (what the gateway would answer) must accept and refuse
the same kling-v3 requests.

Why both exist: the gateway's rules are written apart from the app's (validation.py imports nothing from
lib/contract.py), so a mistake in one is caught by the other, but only if every row of this table goes
through both. Each row is a request as the app holds it; the gateway sees exactly the body the app would
send (`to_payload()`). The rules come from docs/api-contract.md §3.1 and docs/kling-v3-generation.md.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from lib.contract import LATEST, MAX_PROMPT, VideoRequest, validate
from lib.local_gateway.errors import ApiError
from lib.local_gateway.validation import parse_submit

OK, NO = "accept", "refuse"
IMG, IMG2 = "https://example.com/first.jpg", "https://example.com/last.jpg"

ROWS: list[tuple[str, VideoRequest, str]] = [
    # the seed page's five bodies and plain defaults
    ("defaults", VideoRequest("A cat on a meadow"), OK),
    ("std 5 16:9", VideoRequest("A cat", mode="std", duration=5, aspect_ratio="16:9"), OK),
    ("pro 10 9:16", VideoRequest("A cat", mode="pro", duration=10, aspect_ratio="9:16"), OK),
    ("std 15 1:1 text-to-video", VideoRequest("A cat", mode="std", duration=15, aspect_ratio="1:1"), OK),
    ("pro 15 text-to-video", VideoRequest("A cat", mode="pro", duration=15), OK),
    ("first frame, 5 s", VideoRequest("A portrait", duration=5, image_urls=(IMG,)), OK),
    ("first + last frame, 10 s", VideoRequest("Day to night", mode="pro", duration=10,
                                              image_urls=(IMG, IMG2)), OK),
    ("negative prompt and watermark", VideoRequest("A cat", negative_prompt="blurry", watermark=True), OK),
    ("watermark off", VideoRequest("A cat", watermark=False), OK),
    # prompt: required, text, at most MAX_PROMPT characters (boundaries on both sides)
    ("prompt of 1 character", VideoRequest("x"), OK),
    ("prompt at the limit", VideoRequest("p" * MAX_PROMPT), OK),
    ("prompt one over the limit", VideoRequest("p" * (MAX_PROMPT + 1)), NO),
    ("prompt at the limit in astral characters", VideoRequest("🎬" * MAX_PROMPT), OK),
    ("empty prompt", VideoRequest(""), NO),
    ("blank prompt", VideoRequest(" \n\t "), NO),
    ("prompt is a number", VideoRequest(123), NO),  # type: ignore[arg-type]
    ("prompt is a list", VideoRequest(["a", "b"]), NO),  # type: ignore[arg-type]
    # negative prompt: optional text, same limit
    ("negative prompt at the limit", VideoRequest("A cat", negative_prompt="n" * MAX_PROMPT), OK),
    ("negative prompt one over", VideoRequest("A cat", negative_prompt="n" * (MAX_PROMPT + 1)), NO),
    ("blank negative prompt (not sent)", VideoRequest("A cat", negative_prompt="   "), OK),
    ("negative prompt is a number", VideoRequest("A cat", negative_prompt=5), NO),  # type: ignore[arg-type]
    # mode
    ("mode pro", VideoRequest("A cat", mode="pro"), OK),
    ("mode 4k", VideoRequest("A cat", mode="4k"), NO),
    ("mode PRO (case)", VideoRequest("A cat", mode="PRO"), NO),
    ("mode empty", VideoRequest("A cat", mode=""), NO),
    ("mode is a number", VideoRequest("A cat", mode=1), NO),  # type: ignore[arg-type]
    # duration: 5, 10, 15 as integers only
    *[(f"duration {d!r}", VideoRequest("A cat", duration=d), NO)  # type: ignore[arg-type]
      for d in (0, 3, 4, 6, 7, 9, 11, 14, 16, 20, -5, "10", 10.0, 5.5, True, False)],
    # aspect ratio
    ("aspect 1:1", VideoRequest("A cat", aspect_ratio="1:1"), OK),
    ("aspect 4:3", VideoRequest("A cat", aspect_ratio="4:3"), NO),
    ("aspect with a space", VideoRequest("A cat", aspect_ratio=" 16:9"), NO),
    ("aspect 16/9", VideoRequest("A cat", aspect_ratio="16/9"), NO),
    ("aspect is a number", VideoRequest("A cat", aspect_ratio=1.78), NO),  # type: ignore[arg-type]
    # image-to-video duration rule: 15 s is text-to-video only, with one image or two, std or pro
    ("15 s with a first frame", VideoRequest("A cat", duration=15, image_urls=(IMG,)), NO),
    ("15 s with two frames", VideoRequest("A cat", duration=15, image_urls=(IMG, IMG2)), NO),
    ("pro 15 s with a first frame", VideoRequest("A cat", mode="pro", duration=15, image_urls=(IMG,)), NO),
    ("10 s with a first frame", VideoRequest("A cat", duration=10, image_urls=(IMG,)), OK),
    ("default duration with two frames", VideoRequest("A cat", image_urls=(IMG, IMG2)), OK),
    # images: at most two public http(s) URLs, never base64
    ("three images", VideoRequest("A cat", image_urls=(IMG, IMG2, IMG)), NO),
    ("http image", VideoRequest("A cat", image_urls=("http://example.com/a.png",)), OK),
    ("HTTPS in capitals", VideoRequest("A cat", image_urls=("HTTPS://EXAMPLE.COM/A.PNG",)), OK),
    ("image with a query and a fragment", VideoRequest("A cat", image_urls=(IMG + "?w=1#f",)), OK),
    ("empty image URL", VideoRequest("A cat", image_urls=("",)), NO),
    ("blank image URL", VideoRequest("A cat", image_urls=("   ",)), NO),
    ("data: URL", VideoRequest("A cat", image_urls=("data:image/png;base64,iVBORw0KGgo=",)), NO),
    ("raw base64", VideoRequest("A cat", image_urls=("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB" * 8,)), NO),
    ("ftp URL", VideoRequest("A cat", image_urls=("ftp://example.com/a.png",)), NO),
    ("file URL", VideoRequest("A cat", image_urls=("file:///etc/passwd",)), NO),
    ("no scheme", VideoRequest("A cat", image_urls=("example.com/a.png",)), NO),
    ("scheme-relative", VideoRequest("A cat", image_urls=("//example.com/a.png",)), NO),
    ("https with no host", VideoRequest("A cat", image_urls=("https:///a.png",)), NO),
    ("https:// alone", VideoRequest("A cat", image_urls=("https://",)), NO),
    ("space inside the URL", VideoRequest("A cat", image_urls=("https://example.com/a b.png",)), NO),
    ("leading space", VideoRequest("A cat", image_urls=(" " + IMG,)), NO),
    ("trailing newline", VideoRequest("A cat", image_urls=(IMG + "\n",)), NO),
    ("second frame bad", VideoRequest("A cat", image_urls=(IMG, "javascript:alert(1)")), NO),
    ("image URL is a number", VideoRequest("A cat", image_urls=(42,)), NO),  # type: ignore[arg-type]
    # watermark: a boolean
    ("watermark 'yes'", VideoRequest("A cat", watermark="yes"), NO),  # type: ignore[arg-type]
    ("watermark 1", VideoRequest("A cat", watermark=1), NO),  # type: ignore[arg-type]
]


def _latest(prompt: str = "A cat", **kw: Any) -> VideoRequest:
    return VideoRequest(prompt, contract=LATEST, **kw)


REF = "https://example.com/ref.jpg"
# TOAPIS_CONTRACT=latest: the newest page (docs/api-contract.md §3.2): audio, 3–15 s, references with roles
LATEST_ROWS: list[tuple[str, VideoRequest, str]] = [
    ("latest defaults", _latest(), OK),
    *[(f"latest duration {d}", _latest(duration=d), OK) for d in (3, 4, 7, 12, 15)],
    *[(f"latest duration {d!r}", _latest(duration=d), NO)  # type: ignore[arg-type]
      for d in (0, 2, 16, -3, "12", 12.0, True)],
    ("latest Sound on", _latest(audio=True, duration=12), OK),
    ("latest Sound off", _latest(audio=False), OK),
    ("latest Sound 'yes'", _latest(audio="yes"), NO),  # type: ignore[arg-type]
    ("latest Sound 1", _latest(audio=1), NO),  # type: ignore[arg-type]
    ("latest first frame at 15 s (no i2v limit)", _latest(duration=15, image_urls=(IMG,)), OK),
    ("latest two frames at 12 s", _latest(duration=12, image_urls=(IMG, IMG2)), OK),
    ("latest one reference", _latest(references=(REF,)), OK),
    ("latest four references + frames + Sound", _latest(references=(REF,) * 4, image_urls=(IMG, IMG2),
                                                        audio=True, duration=9), OK),
    ("latest five references", _latest(references=(REF,) * 5), NO),
    ("latest reference is base64", _latest(references=("data:image/png;base64,iVBORw0KGgo=",)), NO),
    ("latest reference without a host", _latest(references=("https:///a.png",)), NO),
    ("latest reference with a space", _latest(references=("https://example.com/a b.png",)), NO),
    ("latest reference is a number", _latest(references=(7,)), NO),  # type: ignore[arg-type]
    ("latest bad frame by role", _latest(image_urls=("ftp://example.com/a.png",)), NO),
    ("latest mode 4k", _latest(mode="4k"), NO),
]
# Under v1 the newest fields are refused by the app and never reach a body at all.
V1_WITH_LATEST_FIELDS: list[tuple[str, VideoRequest]] = [
    ("v1 Sound on", VideoRequest("A cat", audio=True)),
    ("v1 Sound off", VideoRequest("A cat", audio=False)),
    ("v1 reference", VideoRequest("A cat", references=(REF,))),
    ("v1 12 s", VideoRequest("A cat", duration=12)),
]
SEED_KEYS = {"model", "prompt", "mode", "duration", "aspect_ratio", "image_urls", "metadata"}


def app_verdict(req: VideoRequest) -> str:
    return NO if [p for p in validate(req) if p.level == "error"] else OK


def gateway_verdict(body: dict[str, Any], version: str = "v1") -> str:
    try:
        parse_submit(body, version=version)
    except ApiError as err:
        assert err.status == 400, err
        return NO
    return OK


@pytest.mark.parametrize(("name", "req", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_the_app_and_the_gateway_give_the_same_verdict(name: str, req: VideoRequest, expected: str) -> None:
    body = req.to_payload()
    assert (app_verdict(req), gateway_verdict(body)) == (expected, expected), body


@pytest.mark.parametrize(("name", "req", "expected"), LATEST_ROWS, ids=[r[0] for r in LATEST_ROWS])
def test_latest_rows_get_the_same_verdict(name: str, req: VideoRequest, expected: str) -> None:
    body = req.to_payload()
    assert (app_verdict(req), gateway_verdict(body, LATEST)) == (expected, expected), body


@pytest.mark.parametrize(("name", "req"), V1_WITH_LATEST_FIELDS, ids=[r[0] for r in V1_WITH_LATEST_FIELDS])
def test_under_v1_the_newest_fields_are_refused_and_never_in_a_body(name: str, req: VideoRequest) -> None:
    assert app_verdict(req) == NO
    assert set(req.to_payload()) <= SEED_KEYS
    # a v1 gateway knows no Sound: should a body carry it, none is made or charged
    assert parse_submit({**req.to_payload(), "duration": 5, "audio": True}, version="v1").audio is False


@pytest.mark.parametrize(("name", "req", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_every_v1_row_gets_the_same_verdict_from_a_gateway_speaking_latest(
        name: str, req: VideoRequest, expected: str) -> None:
    """The embedded gateway runs "latest" by default: a seed body it accepts or refuses the same, except
    durations the newest page added (3–15), which a v1 app never sends."""
    body = req.to_payload()
    added = (isinstance(req.duration, int) and not isinstance(req.duration, bool)
             and 3 <= req.duration <= 15 and req.duration not in (5, 10, 15))
    assert gateway_verdict(body, LATEST) == (OK if added and expected == NO else expected), body


def test_the_table_covers_every_field_and_both_verdicts() -> None:
    """A table that only accepts, or never touches a field, proves nothing about that field."""
    for field in ("mode", "duration", "aspect_ratio", "image_urls", "negative_prompt", "watermark"):
        verdicts = {expected for _, req, expected in ROWS if getattr(req, field) not in (None, ())}
        assert verdicts == {OK, NO}, field
    assert sum(e == NO for *_, e in ROWS) >= 30 and sum(e == OK for *_, e in ROWS) >= 15
    for field in ("duration", "image_urls", "audio", "references"):
        verdicts = {expected for _, req, expected in LATEST_ROWS if getattr(req, field) not in (None, ())}
        assert verdicts == {OK, NO}, field


def test_the_gateway_rules_import_nothing_from_the_app_contract() -> None:
    tree = ast.parse(Path("lib/local_gateway/validation.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m == "lib.contract" or m.startswith("lib.")) for m in imported), imported
