"""The prompt library's rules and file format (lib/presets.py): names, tags, the run rules, the JSON round
trip, and hostile files refused in words (huge, deep, wrong types, unicode, markup), never a traceback."""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from lib import presets
from lib.contract import LATEST, VideoRequest
from lib.presets import Preset, PresetError

FULL = VideoRequest("A fox in snow", mode="pro", duration=10, aspect_ratio="9:16",
                    image_urls=("https://example.com/a.jpg", "https://example.com/b.png"),
                    negative_prompt="blur", watermark=True)


def doc(*items: object, **top: object) -> bytes:
    body = {"format": presets.FORMAT, "version": presets.VERSION, "presets": list(items), **top}
    return json.dumps(body).encode()


@pytest.mark.parametrize(("name", "words"), [
    ("", "The name is empty"),
    ("   ", "The name is empty"),
    ("x" * 81, "The name is 81 characters; at most 80"),
    ("tab\there", "control characters"),
    ("line\nbreak", "control characters"),
    ("zero\u200bwidth", "control characters"),
    (None, "The name must be text (got NoneType)"),
    (["a"], "The name must be text (got list)"),
])
def test_bad_names_are_refused_in_words(name: object, words: str) -> None:
    assert words in (presets.name_problem(name) or "")
    with pytest.raises(PresetError, match=words.split(" (")[0]):
        presets.make(name, "", FULL)


def test_good_names_are_cleaned_and_unique_without_case() -> None:
    assert presets.name_problem("x" * 80) is None
    assert presets.name_problem("Füchse im Schnee 🦊 <b>") is None
    p = presets.make("  Fox   at dawn ", None, FULL)
    assert p.name == "Fox at dawn" and p.key == presets.name_key("FOX AT DAWN ")
    # NFC: the same name typed as one code point or as a letter plus a combining accent
    assert presets.name_key("Caf\u00e9") == presets.name_key("Cafe\u0301")


def test_tags_are_merged_cleaned_and_limited() -> None:
    assert presets.parse_tags("nature, Snow , nature,,NATURE") == (("nature", "Snow"), [])
    assert presets.parse_tags(["a", "b"]) == (("a", "b"), [])
    _, words = presets.parse_tags([str(i) for i in range(13)])
    assert words == ["13 tags; a preset takes at most 12 — remove 1."]
    assert "at most 30" in presets.parse_tags("x" * 31)[1][0]
    assert presets.parse_tags({"a": 1})[1] == ["Tags must be a list of words (got dict)."]
    assert presets.parse_tags([1])[1] == ["A tag must be text (got int)."]


def test_a_preset_obeys_the_same_rules_as_a_run() -> None:
    with pytest.raises(PresetError, match="15 s is text-to-video only"):
        presets.make("x", "", FULL.replace(duration=15))
    with pytest.raises(PresetError, match="The prompt is empty"):
        presets.make("x", "", VideoRequest("  "))
    with pytest.raises(PresetError, match="must start with http"):
        presets.make("x", "", VideoRequest("a", image_urls=("ftp://h/a.png",)))


def test_export_then_import_gives_back_every_setting() -> None:
    saved = [presets.make("Fox", "nature, snow", FULL),
             presets.make("Bare", "", VideoRequest("only a prompt")),
             presets.make("Ünïcode 🦊 <script>alert(1)</script>", ["web"], VideoRequest("a cat", duration=5))]
    text = presets.export_json(saved, now=0)
    data = json.loads(text)
    top = (data["format"], data["version"], data["exported_at"])
    assert top == (presets.FORMAT, 1, "1970-01-01T00:00:00Z")
    plan = presets.parse_import(text.encode())
    assert plan.problems == [] and plan.skipped == []
    assert [(p.name, p.tags, p.request) for p in plan.presets] == [(p.name, p.tags, p.request) for p in saved]
    assert [p.fingerprint() for p in plan.presets] == [p.fingerprint() for p in saved]


@pytest.mark.parametrize(("data", "words"), [
    (b"", "not valid JSON"),
    (b"{not json", "not valid JSON (line 1, column 2)"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"[" * 200_000 + b"]" * 200_000, "nests too deeply"),
    (json.dumps({"format": presets.FORMAT, "version": 1,
                 "presets": [{"name": "a", "settings": {"prompt": [[[[[[["deep"]]]]]]]}}]}).encode(),
     "nests too deeply"),
    (b"[]", "not a presets file"),
    (b'"a string"', "not a presets file"),
    (json.dumps({"format": "other", "version": 1, "presets": []}).encode(), "not a presets file"),
    (json.dumps({"format": presets.FORMAT, "version": 2, "presets": []}).encode(),
     "version 2; this app reads version 1"),
    (json.dumps({"format": presets.FORMAT, "version": True, "presets": []}).encode(), "version True"),
    (json.dumps({"format": presets.FORMAT, "version": "1", "presets": []}).encode(), "version 1;"),
    (json.dumps({"format": presets.FORMAT, "version": 1, "presets": {"a": 1}}).encode(), "must be a list"),
    (doc(*[{"name": str(i), "settings": {"prompt": "a"}} for i in range(501)]), "holds 501 presets"),
    (b" " * 2_000_001, "The file is 2.0 MB; a presets file is at most 2 MB"),
])
def test_a_file_that_is_not_a_presets_file_is_refused_whole(data: bytes, words: str) -> None:
    with pytest.raises(PresetError) as caught:
        presets.parse_import(data)
    text = str(caught.value)
    assert words in text and "Nothing was imported" in text and "Traceback" not in text


def test_a_huge_file_is_refused_before_it_is_parsed() -> None:
    data = b'{"format": "' + b"x" * 50_000_000 + b'"}'
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PresetError, match=r"50\.0 MB"):
            presets.parse_import(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 and time.perf_counter() - started < 0.5


def test_each_bad_preset_is_named_with_its_reason_and_the_good_ones_kept() -> None:
    huge_mode = "m" * 1_000_000
    data = doc(
        {"name": "Good", "tags": ["ok"], "settings": {"prompt": "a heron", "mode": "std", "duration": 5}},
        "not an object",
        {"name": "No settings"},
        {"name": "Wrong prompt", "settings": {"prompt": 12}},
        {"name": "Bool duration", "settings": {"prompt": "a", "duration": True}},
        {"name": "Str duration", "settings": {"prompt": "a", "duration": "10"}},
        {"name": "Frames not a list", "settings": {"prompt": "a", "image_urls": "https://e.com/a.png"}},
        {"name": "Unknown field", "settings": {"prompt": "a", "seed": 3}},
        {"name": "Huge mode", "settings": {"prompt": "a", "mode": huge_mode}},
        {"name": "Watermark text", "settings": {"prompt": "a", "watermark": "yes"}},
        {"name": "Too many tags", "tags": [str(i) for i in range(20)], "settings": {"prompt": "a"}},
        {"name": "x" * 200, "settings": {"prompt": "a"}},
        {"name": "Good", "tags": ["ok"], "settings": {"prompt": "a heron", "mode": "std", "duration": 5}},
        {"name": "GOOD", "settings": {"prompt": "another heron"}},
    )
    plan = presets.parse_import(data)
    assert [p.name for p in plan.presets] == ["Good"]
    words = plan.problems
    expected = [
        "Preset 2 is not an object with a name and settings; skipped.",
        "Preset 3 (“No settings”) has no settings object; skipped.",
        "Preset 4 (“Wrong prompt”): The prompt must be text (got int). Skipped.",
        "Preset 5 (“Bool duration”): the duration must be a whole number of seconds (5, 10 or 15); skipped.",
        "Preset 6 (“Str duration”): the duration must be a whole number of seconds (5, 10 or 15); skipped.",
        "Preset 7 (“Frames not a list”): the frame images must be a list of URLs; skipped.",
        "Preset 8 (“Unknown field”) has fields this app does not know (seed); skipped.",
    ]
    assert words[:7] == expected
    assert words[7].startswith("Preset 9 (“Huge mode”): Mode 'mmmm") and len(words[7]) < 700
    assert words[8] == ("Preset 10 (“Watermark text”): Watermark must be on or off (true/false), not 'yes'. "
                        "Skipped.")
    assert "20 tags; a preset takes at most 12" in words[9]
    assert words[10].startswith("Preset 12 (“" + "x" * 39 + "…”): The name is 200 characters")
    assert words[11] == ("Preset 14 (“GOOD”) has the name of an earlier preset in the file but other "
                         "settings; skipped — rename one of them.")
    assert plan.skipped == ["Preset 13 (“Good”) repeats an earlier one in the file; skipped."]
    assert len(words) == 12


def test_a_preset_starts_a_grid_across_std_and_pro() -> None:
    spec = Preset("Fox", FULL).grid_spec()
    assert (spec.prompts, spec.modes, spec.durations, spec.aspects) == (("A fox in snow",), ("std", "pro"),
                                                                        (10,), ("9:16",))
    assert (spec.image_urls, spec.negative_prompt, spec.watermark) == (FULL.image_urls, "blur", True)


def test_a_latest_preset_keeps_sound_references_and_its_duration_through_a_file_and_a_grid() -> None:
    """Saved under TOAPIS_CONTRACT=latest: Sound, reference images and a 7 s duration survive export, import
    and "Start grid from preset"; a file that lies about them is refused in words."""
    req = VideoRequest("A fox in snow", mode="pro", duration=7, aspect_ratio="16:9", audio=True,
                       references=("https://e.com/ref.png",), contract=LATEST)
    saved = presets.make("Loud fox", "sound", req)
    plan = presets.parse_import(presets.export_json([saved], now=0).encode())
    assert plan.problems == [] and [p.request for p in plan.presets] == [req]
    spec = plan.presets[0].grid_spec()
    assert (spec.audio, spec.references, spec.contract) == (True, req.references, LATEST)
    assert spec.durations == (7,)
    bad = doc({"name": "A", "settings": {"prompt": "a", "audio": "yes"}},
              {"name": "B", "settings": {"prompt": "a", "references": "https://e.com/r.png"}},
              {"name": "C", "settings": {"prompt": "a", "contract": "v9"}})
    assert presets.parse_import(bad).problems == [
        "Preset 1 (“A”): Sound must be true or false; skipped.",
        "Preset 2 (“B”): the reference images must be a list of URLs; skipped.",
        'Preset 3 (“C”): the contract must be "v1" or "latest"; skipped.']
