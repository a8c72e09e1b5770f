"""The prompt library's rules and its JSON file: what a preset is, when it is valid, export and import.

Pure and local (no streamlit, no database): a preset is a named, tagged kling-v3 request, checked with the
very rules a run is checked with (lib.contract.validate) before it is saved, so starting Compose or a
Compare grid from one never meets a surprise the form would have caught. The ledger stores presets
(lib/ledger/presets.py); this module decides what may be stored.

Why import is two steps (parse, then one ledger transaction): a file is untrusted input. Everything about
the whole file (size, encoding, JSON, depth, format, version) is judged first and refuses the file in
words with nothing written; then each preset is judged alone and a bad one is reported and skipped.
"""
from __future__ import annotations

import hashlib
import json
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.compare import DEFAULT_MODES, GridSpec
from lib.contract import LATEST, V1, VideoRequest, validate

MAX_NAME = 80
MAX_TAG = 30
MAX_TAGS = 12
MAX_FILE_BYTES = 2_000_000  # a library of 500 presets with 2,500-character prompts is under 1.5 MB
MAX_FILE_PRESETS = 500
MAX_DEPTH = 6  # {"presets": [{"settings": {"image_urls": [...]}}]} is 5 deep
FORMAT = "kling-v3-playground/presets"
VERSION = 1
SETTING_KEYS = ("prompt", "negative_prompt", "mode", "duration", "aspect_ratio", "watermark", "image_urls",
                "contract", "audio", "references")  # the last three: saved under TOAPIS_CONTRACT=latest
PRESET_KEYS = ("name", "tags", "settings")


class PresetError(ValueError):
    """A preset (or preset file) that cannot be saved as asked: str() is the words for the user."""


class NameTaken(PresetError):
    """Another preset already has this name (names are unique in a ledger, compared case-insensitively)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A preset named “{name}” already exists: overwrite it, or choose another name.")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def clean_name(name: Any) -> str:
    """The name as stored: NFC, outer spaces removed, inner runs of spaces made one."""
    if not isinstance(name, str):
        return ""
    return " ".join(unicodedata.normalize("NFC", name).split())


def name_key(name: str) -> str:
    """What uniqueness compares: "Fox" and "fox " are the same preset name."""
    return clean_name(name).casefold()


def name_problem(name: Any) -> str | None:
    """Why this name cannot be used, in words, or None."""
    if not isinstance(name, str):
        return f"The name must be text (got {type(name).__name__})."
    if _has_control(name.strip()):
        return "The name contains control characters or line breaks — use letters, digits and spaces."
    cleaned = clean_name(name)
    if not cleaned:
        return "The name is empty — give the preset a name of 1 to 80 characters."
    if len(cleaned) > MAX_NAME:
        return f"The name is {len(cleaned):,} characters; at most {MAX_NAME} — shorten it."
    return None


def parse_tags(value: Any) -> tuple[tuple[str, ...], list[str]]:
    """Tags from a comma-separated text or a list: (clean tags, problems in words). Duplicates (any case)
    are merged, not reported."""
    if value is None or value == "":
        return (), []
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return (), [f"Tags must be a list of words (got {type(value).__name__})."]
    tags: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"A tag must be text (got {type(item).__name__}).")
            continue
        tag = clean_name(item)
        if not tag:
            continue
        if _has_control(item.strip()):
            problems.append("A tag contains control characters or line breaks — use letters and digits.")
        elif len(tag) > MAX_TAG:
            problems.append(f"The tag “{tag[:MAX_TAG]}…” is {len(tag)} characters; at most {MAX_TAG}.")
        else:
            tags.setdefault(tag.casefold(), tag)
    if len(tags) > MAX_TAGS:
        problems.append(f"{len(tags)} tags; a preset takes at most {MAX_TAGS} — "
                        f"remove {len(tags) - MAX_TAGS}.")
    return tuple(tags.values()), problems


@dataclass(frozen=True)
class Preset:
    """A named kling-v3 request with tags. `request` is exactly what a run of it would hold."""

    name: str
    request: VideoRequest
    tags: tuple[str, ...] = ()
    preset_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def key(self) -> str:
        return name_key(self.name)

    def settings(self) -> dict[str, Any]:
        return self.request.to_dict()

    def fingerprint(self) -> str:
        """Name + content: an import skips a preset whose fingerprint the library already holds."""
        tags = sorted(t.casefold() for t in self.tags)
        body = {"name": self.key, "tags": tags, "settings": self.settings()}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()

    def grid_spec(self) -> GridSpec:
        """A Compare grid from this preset: its prompt, duration, aspect, frames, negative prompt,
        watermark, Sound and reference images, across std and pro (what Compare is for); the user widens
        it on the page."""
        req = self.request
        return GridSpec(prompts=(req.prompt,), modes=DEFAULT_MODES, durations=(req.effective_duration,),
                        aspects=(req.effective_aspect,), image_urls=req.image_urls,
                        negative_prompt=req.negative_prompt, watermark=req.watermark,
                        audio=req.audio, references=req.references, contract=req.contract)


def tags_of(found: Sequence[Preset]) -> list[str]:
    """Every tag in use, once each (the first spelling seen), in alphabetical order."""
    seen: dict[str, str] = {}
    for preset in found:
        for tag in preset.tags:
            seen.setdefault(tag.casefold(), tag)
    return [seen[k] for k in sorted(seen)]


def with_tag(found: Sequence[Preset], tag: str | None) -> list[Preset]:
    """The presets carrying `tag` (any case); all of them without one."""
    if not tag:
        return list(found)
    wanted = clean_name(tag).casefold()
    return [p for p in found if wanted in {t.casefold() for t in p.tags}]


def problems(name: Any, tags: Any, request: VideoRequest) -> list[str]:
    """Every reason this preset cannot be saved: its name, its tags, and the run rules (errors only;
    a warning, such as a risky image format, does not stop a run either)."""
    words: list[str] = []
    if (problem := name_problem(name)) is not None:
        words.append(problem)
    words += parse_tags(tags)[1]
    words += [p.message for p in validate(request) if p.level == "error"]
    return words


def make(name: Any, tags: Any, request: VideoRequest) -> Preset:
    """A preset ready to save, or PresetError with every problem in words."""
    found = problems(name, tags, request)
    if found:
        raise PresetError(" ".join(found))
    return Preset(name=clean_name(name), request=request, tags=parse_tags(tags)[0])


# ------------------------------------------------------------------ the JSON file
def export_json(presets: Sequence[Preset], *, now: float | None = None) -> str:
    """The versioned file: {"format", "version", "exported_at", "presets": [{name, tags, settings}]}."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return json.dumps({
        "format": FORMAT, "version": VERSION, "exported_at": stamp,
        "presets": [{"name": p.name, "tags": list(p.tags), "settings": p.settings()} for p in presets],
    }, ensure_ascii=False, indent=2)


@dataclass
class ImportPlan:
    """What a file holds: presets that passed every rule, and words for each one that did not."""

    presets: list[Preset] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # duplicates: the same name and content


def _depth(value: Any, limit: int) -> int:
    """How deep `value` nests, counting no further than limit + 1 (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return deepest


def _label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    if isinstance(name, str) and clean_name(name):
        shown = clean_name(name)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        return f"Preset {index} (“{shown}”)"
    return f"Preset {index}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one(index: int, raw: Any) -> tuple[Preset | None, list[str]]:
    label = _label(index, raw)
    if not isinstance(raw, Mapping):
        return None, [f"{label} is not an object with a name and settings; skipped."]
    unknown = sorted(str(k)[:30] for k in raw if k not in PRESET_KEYS)
    settings = raw.get("settings")
    if not isinstance(settings, Mapping):
        return None, [f"{label} has no settings object; skipped."]
    unknown += sorted(str(k)[:30] for k in settings if k not in SETTING_KEYS)
    if unknown:
        return None, [f"{label} has fields this app does not know ({', '.join(unknown[:5])}); skipped."]
    urls = settings.get("image_urls", [])
    if urls is not None and not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
        return None, [f"{label}: the frame images must be a list of URLs; skipped."]
    duration = settings.get("duration")
    if duration is not None and not (isinstance(duration, int) and not isinstance(duration, bool)):
        return None, [f"{label}: the duration must be a whole number of seconds (5, 10 or 15); skipped."]
    refs = settings.get("references", [])
    if refs is not None and not (isinstance(refs, list) and all(isinstance(u, str) for u in refs)):
        return None, [f"{label}: the reference images must be a list of URLs; skipped."]
    audio = settings.get("audio")
    if audio is not None and not isinstance(audio, bool):
        return None, [f"{label}: Sound must be true or false; skipped."]
    kind = settings.get("contract", V1)
    if kind not in (V1, LATEST):
        return None, [f"{label}: the contract must be \"{V1}\" or \"{LATEST}\"; skipped."]
    prompt = settings.get("prompt")
    request = VideoRequest(
        prompt=prompt if isinstance(prompt, str) else ("" if prompt is None else prompt),
        mode=settings.get("mode"), duration=duration, aspect_ratio=settings.get("aspect_ratio"),
        image_urls=tuple(urls or ()), negative_prompt=settings.get("negative_prompt"),
        watermark=settings.get("watermark"), audio=audio, references=tuple(refs or ()),
        contract=LATEST if (kind == LATEST or audio is not None or refs) else V1)
    found = problems(raw.get("name"), raw.get("tags"), request)
    if found:  # a contract message may quote the value: a hostile file's megabyte "mode" is cut short
        return None, [f"{label}: {_short(' '.join(found), 600)} Skipped."]
    return Preset(name=clean_name(raw["name"]), request=request, tags=parse_tags(raw.get("tags"))[0]), []


def parse_import(data: bytes) -> ImportPlan:
    """Judge a whole file, then each preset in it. PresetError (nothing to save) when the file itself is
    unusable; otherwise the valid presets and words for each one that is not."""
    if len(data) > MAX_FILE_BYTES:
        raise PresetError(f"The file is {len(data) / 1_000_000:.1f} MB; a presets file is at most "
                          f"{MAX_FILE_BYTES // 1_000_000} MB. Nothing was imported.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PresetError("The file is not UTF-8 text, so it is not a presets file. Nothing was imported — "
                          "choose a file exported from this app.") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise PresetError("The file nests too deeply to be a presets file. Nothing was imported.") from None
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PresetError(f"The file is not valid JSON{where}. Nothing was imported — choose a file "
                          "exported from this app.") from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise PresetError("The file nests too deeply to be a presets file. Nothing was imported.")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PresetError(f"This JSON is not a presets file (its \"format\" must be \"{FORMAT}\"). Nothing "
                          "was imported — choose a file exported from this app.")
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        shown = str(version)[:20] if isinstance(version, int | float | str) else type(version).__name__
        raise PresetError(f"This presets file is version {shown}; this app reads version {VERSION}. Nothing "
                          "was imported — export it again from an app of the same version.")
    items = doc.get("presets")
    if not isinstance(items, list):
        raise PresetError("The file's \"presets\" must be a list. Nothing was imported.")
    if len(items) > MAX_FILE_PRESETS:
        raise PresetError(f"The file holds {len(items):,} presets; at most {MAX_FILE_PRESETS} are imported "
                          "at once. Nothing was imported — split the file.")
    plan = ImportPlan()
    seen: dict[str, str] = {}
    for index, raw in enumerate(items, start=1):
        preset, words = _one(index, raw)
        if preset is None:
            plan.problems += words
            continue
        prints = seen.get(preset.key)
        if prints == preset.fingerprint():
            plan.skipped.append(f"{_label(index, raw)} repeats an earlier one in the file; skipped.")
        elif prints is not None:
            plan.problems.append(f"{_label(index, raw)} has the name of an earlier preset in the file but "
                                 "other "
                                 "settings; skipped — rename one of them.")
        else:
            seen[preset.key] = preset.fingerprint()
            plan.presets.append(preset)
    return plan
