"""The prompt library through AppTest: save from Compose, start Compose and a Compare grid from a preset,
and the Presets page (rename, retag, delete confirmed, export, import), on a real SQLite ledger."""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib import presets
from lib.contract import VideoRequest
from lib.ledger import Ledger
from lib.ui import compare_form, preset_controls
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE = "pages/presets.py"
IMG = "https://example.com/first.jpg"


def ledger_of(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def new_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def said(at: AppTest) -> str:
    return " | ".join(unescape_md(e.value) for kind in ("success", "info", "warning", "error")
                      for e in getattr(at, kind))


def button(at: AppTest, key: str):
    return at.button(key=key)


def stored(tmp_path: Path) -> list[presets.Preset]:
    led = ledger_of(tmp_path)
    try:
        return led.list_presets()
    finally:
        led.close()


def seed(tmp_path: Path, name: str, request: VideoRequest, tags: str = "") -> str:
    led = ledger_of(tmp_path)
    try:
        return led.save_preset(presets.make(name, tags, request)).preset_id or ""
    finally:
        led.close()


def test_save_as_preset_on_compose_stores_every_setting_and_sends_nothing(isolated: Path) -> None:
    at = new_app()
    at.text_area(key="compose_prompt").set_value("A red fox in fresh snow, low tracking shot")
    at.text_area(key="compose_negative").set_value("blur, text")
    at.radio(key="compose_mode").set_value("pro")
    at.radio(key="compose_duration").set_value(10)
    at.radio(key="compose_aspect").set_value("9:16")
    at.checkbox(key="compose_watermark").check()
    at.text_input(key="compose_first_frame_url").set_value(IMG)
    at.text_input(key=preset_controls.NAME).set_value("  Fox   at dawn ")
    at.text_input(key=preset_controls.TAGS).set_value("nature, Snow, nature")
    button(at, "preset_save").click().run()
    assert not at.exception
    assert "Saved the preset “Fox at dawn”. Nothing was sent or charged." in said(at)
    found = stored(isolated)
    assert [(p.name, p.tags) for p in found] == [("Fox at dawn", ("nature", "Snow"))]
    assert found[0].request == VideoRequest(
        "A red fox in fresh snow, low tracking shot", mode="pro", duration=10, aspect_ratio="9:16",
        image_urls=(IMG,), negative_prompt="blur, text", watermark=True)
    led = ledger_of(isolated)
    try:
        assert led.count_runs() == 0  # a run is written before any submit: none means nothing was sent
    finally:
        led.close()
    assert at.text_input(key=preset_controls.NAME).value == ""  # ready for the next one


def test_a_taken_name_asks_overwrite_or_another_name(isolated: Path) -> None:
    seed(isolated, "Fox", VideoRequest("an old fox"))
    at = new_app()
    at.text_area(key="compose_prompt").set_value("a new fox")
    at.text_input(key=preset_controls.NAME).set_value("fox")
    button(at, "preset_save").click().run()
    assert "A preset named “fox” already exists: overwrite it, or choose another name." in said(at)
    assert [p.request.prompt for p in stored(isolated)] == ["an old fox"]  # nothing written yet
    assert button(at, "preset_save_other").label == "Save as “fox (2)”"
    button(at, "preset_save_other").click().run()
    assert sorted(p.name for p in stored(isolated)) == ["Fox", "fox (2)"]
    at.text_input(key=preset_controls.NAME).set_value("FOX")
    button(at, "preset_save").click().run()
    button(at, "preset_overwrite").click().run()
    assert "Overwrote the preset “FOX”." in said(at)
    # overwritten in place, under the spelling just typed
    prompts = {p.name: p.request.prompt for p in stored(isolated)}
    assert prompts == {"FOX": "a new fox", "fox (2)": "a new fox"}


def test_a_preset_breaking_a_run_rule_or_a_name_rule_is_refused_in_words(isolated: Path) -> None:
    at = new_app()
    at.text_input(key=preset_controls.NAME).set_value("Empty")
    button(at, "preset_save").click().run()
    assert "Not saved: The prompt is empty" in said(at)
    at.text_area(key="compose_prompt").set_value("a heron")
    at.text_input(key=preset_controls.NAME).set_value("x" * 81)
    button(at, "preset_save").click().run()
    assert "The name is 81 characters; at most 80" in said(at)
    at.text_input(key=preset_controls.NAME).set_value("ok")
    at.radio(key="compose_duration").set_value(15)
    at.text_input(key="compose_first_frame_url").set_value(IMG)
    button(at, "preset_save").click().run()
    assert "15 s is text-to-video only" in said(at)
    assert stored(isolated) == [] and not at.exception


def test_start_compose_from_a_preset_fills_the_form(isolated: Path) -> None:
    pid = seed(isolated, "Night city", VideoRequest("Neon street <script>alert(1)</script>", mode="pro",
                                                    duration=10, aspect_ratio="1:1", negative_prompt="blur",
                                                    watermark=True, image_urls=(IMG,)), "city, night")
    seed(isolated, "Ocean", VideoRequest("waves"), "nature")
    at = new_app()
    at.button_group(key="preset_compose_tag").set_value("night").run()  # the tag filter
    at.selectbox(key="preset_compose_pick").set_value(pid).run()
    assert at.selectbox(key="preset_compose_pick").options == ["Night city [city, night]"]
    button(at, "preset_compose_fill").click().run()
    assert not at.exception
    assert at.text_area(key="compose_prompt").value == "Neon street <script>alert(1)</script>"
    assert at.text_area(key="compose_negative").value == "blur"
    assert (at.radio(key="compose_mode").value, at.radio(key="compose_duration").value,
            at.radio(key="compose_aspect").value) == ("pro", 10, "1:1")
    assert at.checkbox(key="compose_watermark").value is True
    assert at.text_input(key="compose_first_frame_url").value == IMG
    assert "Filled in from the preset “Night city”" in said(at)
    led = ledger_of(isolated)
    try:
        assert led.count_runs() == 0
    finally:
        led.close()


def test_start_a_compare_grid_from_a_preset(isolated: Path) -> None:
    pid = seed(isolated, "Fox", VideoRequest("a fox", mode="std", duration=10, aspect_ratio="9:16",
                                             negative_prompt="blur", watermark=True))
    at = new_app("pages/compare.py")
    at.selectbox(key="preset_grid_pick").set_value(pid).run()
    button(at, "preset_grid_fill").click().run()
    assert not at.exception
    ss = at.session_state
    assert ss[compare_form.prompt_key(0)] == "a fox" and ss[compare_form.N_VARIANTS] == 1
    assert (ss[compare_form.MODES_KEY], ss[compare_form.DURATIONS_KEY], ss[compare_form.ASPECTS_KEY]) == (
        ["std", "pro"], [10], ["9:16"])
    assert ss[compare_form.NEGATIVE] == "blur" and ss[compare_form.WATERMARK] is True
    assert "Grid filled in from the preset “Fox” (std and pro)" in said(at)
    labels = [b.label for b in at.button]
    assert any("Submit grid" in label and "2 runs" in label for label in labels), labels


def test_the_presets_page_renames_retags_deletes_and_opens(isolated: Path) -> None:
    pid = seed(isolated, "Fox", VideoRequest("a fox", duration=10), "nature")
    seed(isolated, "Owl", VideoRequest("an owl"))
    at = new_app(PAGE)
    assert [e.label for e in at.expander] == ["Fox · nature", "Owl"]
    at.text_input(key=f"presets_page_rename_{pid}").set_value("owl")
    button(at, f"presets_page_do_rename_{pid}").click().run()
    assert "A preset named “owl” already exists" in said(at)
    at.text_input(key=f"presets_page_rename_{pid}").set_value("Arctic fox")
    button(at, f"presets_page_do_rename_{pid}").click().run()
    assert "Renamed to “Arctic fox”." in said(at)
    at.text_input(key=f"presets_page_tags_{pid}").set_value("nature, winter")
    button(at, f"presets_page_do_tags_{pid}").click().run()
    assert {p.name: p.tags for p in stored(isolated)} == {"Arctic fox": ("nature", "winter"), "Owl": ()}
    # delete asks first; Cancel keeps it
    button(at, f"presets_page_delete_{pid}").click().run()
    assert any("will be deleted" in unescape_md(m.value) for m in at.markdown)
    button(at, "presets_page_delete_no").click().run()
    assert len(stored(isolated)) == 2
    button(at, f"presets_page_delete_{pid}").click().run()
    button(at, "presets_page_delete_yes").click().run()
    assert [p.name for p in stored(isolated)] == ["Owl"] and "Deleted “Arctic fox”." in said(at)


def test_open_in_compose_from_the_presets_page(isolated: Path) -> None:
    pid = seed(isolated, "Fox", VideoRequest("a fox in the page", mode="pro"))
    at = new_app(PAGE)
    button(at, f"presets_page_compose_{pid}").click().run()
    assert not at.exception
    assert at.text_area(key="compose_prompt").value == "a fox in the page"
    assert at.radio(key="compose_mode").value == "pro"


def test_export_then_import_round_trips_and_reports_bad_presets(isolated: Path) -> None:
    seed(isolated, "Fox", VideoRequest("a fox", mode="pro"), "nature")
    at = new_app(PAGE)
    exported = presets.export_json(stored(isolated))
    doc = json.loads(exported)
    doc["presets"] += [
        {"name": "Too long", "settings": {"prompt": "x" * 2600}},
        {"name": "<script>alert(1)</script>", "tags": ["web"],
         "settings": {"prompt": "a cat", "duration": 5}},
        {"name": 7, "settings": {"prompt": "a dog"}},
    ]
    at.file_uploader(key="presets_page_import_file").upload("presets.json", json.dumps(doc).encode(),
                                                            "application/json").run()
    button(at, "presets_page_import").click().run()
    assert not at.exception
    words = said(at)
    assert "Imported 1 preset: <script>alert(1)</script>." in words
    assert "“Fox” is already in the library; skipped." in words
    assert "Preset 2 (“Too long”): The prompt is too long: 2,600 / 2,500 characters" in words
    assert "Preset 4: The name must be text (got int)." in words
    assert sorted(p.name for p in stored(isolated)) == ["<script>alert(1)</script>", "Fox"]


def test_a_malformed_file_is_refused_whole_with_words(isolated: Path) -> None:
    at = new_app(PAGE)
    for data, expected in ((b"{not json", "The file is not valid JSON (line 1, column 2)"),
                           (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
                           (b"{}", "This JSON is not a presets file"),
                           (b"x" * 3_000_000, "The file is 3.0 MB; a presets file is at most 2 MB")):
        at.file_uploader(key="presets_page_import_file").upload("p.json", data, "application/json").run()
        button(at, "presets_page_import").click().run()
        assert not at.exception and expected in said(at), (expected, said(at))
    assert stored(isolated) == []
