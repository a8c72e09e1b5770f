"""TOAPIS_CONTRACT=latest through AppTest: Sound, 3–15 s and reference images appear only under latest,
are priced on their own before any press, and a latest run opened under v1 says so in words."""
from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import av
from PIL import Image
from streamlit.testing.v1 import AppTest

from lib import presses
from lib.contract import LATEST, VideoRequest
from lib.ledger import COMPLETED, Ledger
from lib.ui.text import unescape_md

APP = str(Path(__file__).resolve().parents[2] / "app.py")
REF = "https://example.com/reference.jpg"


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    return at.run()


def labels(at: AppTest) -> set[str]:
    return {w.label for w in [*at.radio, *at.checkbox, *at.toggle, *at.select_slider, *at.file_uploader,
                              *at.button]}


def words(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.error, *at.info, *at.warning]
    return " ".join(unescape_md(e.value) for e in parts)


def test_under_v1_no_newest_control_appears():
    at = new_app()
    assert not at.exception
    found = labels(at)
    assert "Sound" not in found and not any(x.startswith("Reference images") for x in found)
    assert not at.select_slider  # the duration is the seed's three choices
    assert next(r for r in at.radio if r.label == "Duration").options == ["5 s", "10 s", "15 s"]


def test_under_latest_sound_durations_and_references_are_offered_and_priced(monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    at = new_app()
    assert not at.exception
    found = labels(at)
    assert "Sound" in found and "Reference images (up to 4)" in found, found
    slider = next(s for s in at.select_slider if s.label == "Duration")
    assert slider.options == [f"{d} s" for d in range(3, 16)]
    slider.set_value(12)
    at.toggle[0].set_value(True)
    at.run()
    # std 12 s: 12 × $0.0368 = $0.4416, Sound 12 × $0.0625 = $0.75 → $1.19, Sound named on its own
    buttons = [b.label for b in at.button]
    assert "Generate · Std 720p · 12 s · ≈ $1.19 (Sound ≈ $0.75)" in buttons, buttons
    assert "≈ $1.19 (estimate)** (Sound ≈ $0.75)" in words(at).replace("**Cost ", "") or \
        "(Sound ≈ $0.75)" in words(at)
    # frames stay usable at 15 s under latest (the newest page has no image-to-video limit)
    slider = next(s for s in at.select_slider if s.label == "Duration")
    slider.set_value(15)
    at.run()
    assert not any(u.disabled for u in at.file_uploader), "frames must stay on at 15 s under latest"


def test_a_bad_setting_gets_words_on_the_setup_page(monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "v2")
    at = new_app()
    assert not at.exception
    text = words(at)
    assert "TOAPIS_CONTRACT must be v1 or latest, but it is 'v2'" in text, text
    assert "TOAPIS_CONTRACT=latest" in text


def test_a_latest_run_with_sound_completes_with_an_audio_track(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    at = new_app()
    next(t for t in at.text_area if t.label == "Prompt").set_value("A drummer on a rooftop, latest test")
    next(s for s in at.select_slider if s.label == "Duration").set_value(3)
    at.toggle[0].set_value(True)
    at.run()
    at.file_uploader(key="compose_ref_files").upload("ref.png", _png(), "image/png").run()
    at.file_uploader(key="compose_first_frame_file").upload("a.png", _png(color=(0, 90, 200)),
                                                            "image/png").run()
    assert not at.exception
    assert any("role: reference" in c for c in words(at).split("  ")) or "role: reference" in words(at)
    next(b for b in at.button if b.label.startswith("Generate · ")).click().run()
    assert not at.exception
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    [run] = ledger.list_runs()
    assert run.request.audio is True and run.request.contract == LATEST and run.request.duration == 3
    assert len(run.request.references) == 1 and len(run.request.image_urls) == 1
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not ledger.get(run.run_id).video_path:  # archived
        time.sleep(0.3)
    done = ledger.get(run.run_id)
    assert done.state == COMPLETED and done.video_path, done
    archived = next(isolated.rglob(Path(done.video_path).name))
    with av.open(str(archived)) as container:
        kinds = {s.type for s in container.streams}
    assert kinds == {"video", "audio"}
    at.run()  # the card names what the run holds
    card_words = " ".join(unescape_md(c.value) for c in at.get_by_key(f"card_{run.run_id}").caption)
    assert "3 s" in card_words and "first frame · 1 reference image · Sound" in card_words, card_words
    # the gateway's log holds exactly the newest body: audio, 3 s, nothing v1 would not say otherwise
    bodies = _gateway_bodies(isolated)
    assert bodies and bodies[-1]["audio"] is True and bodies[-1]["duration"] == 3
    assert len(bodies[-1]["reference_images"]) == 1 and "image_urls" not in bodies[-1]
    assert [r["role"] for r in bodies[-1]["image_with_roles"]] == ["first_frame"]


def _gateway_bodies(data: Path) -> list[dict]:
    """Every submit body the embedded gateway accepted, read from its own task log (SQLite)."""
    with sqlite3.connect(next(data.rglob("local_gateway.db"))) as db:
        return [json.loads(r[0]) for r in db.execute("SELECT request_json FROM tasks ORDER BY created_at")]


SEED_KEYS = {"model", "prompt", "mode", "duration", "aspect_ratio", "image_urls", "metadata"}


def test_under_v1_every_control_touched_sends_only_the_seed_fields(isolated, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_PRESS_WINDOW", "0.5")
    at = new_app()
    next(t for t in at.text_area if t.label == "Prompt").set_value("A kite over dunes, v1 test")
    next(t for t in at.text_area if t.label == "Negative prompt").set_value("blur")
    next(r for r in at.radio if r.label == "Mode").set_value("pro")
    next(r for r in at.radio if r.label == "Duration").set_value(10)
    next(r for r in at.radio if r.label == "Aspect ratio").set_value("9:16")
    next(c for c in at.checkbox if c.label == "Watermark").check()
    at.run()
    at.file_uploader(key="compose_first_frame_file").upload("a.png", _png(), "image/png").run()
    at.file_uploader(key="compose_last_frame_file").upload("b.png", _png(color=(0, 90, 200)),
                                                           "image/png").run()
    next(b for b in at.button if b.label.startswith("Generate · ")).click().run()
    time.sleep(presses.GUARD)  # another button right after a press is held
    next(b for b in at.button if b.label.startswith("Compare std vs pro · ")).click().run()
    assert not at.exception
    deadline = time.monotonic() + 60
    bodies: list[dict] = []
    while time.monotonic() < deadline and len(bodies) < 3:
        time.sleep(0.3)
        bodies = _gateway_bodies(isolated)
    assert len(bodies) == 3, bodies
    for body in bodies:
        assert set(body) <= SEED_KEYS, body
        assert set(body.get("metadata") or {}) <= {"negative_prompt", "watermark"}, body
        assert body["duration"] == 10 and len(body["image_urls"]) == 2


def test_a_latest_run_opened_under_v1_says_so_and_rerun_keeps_nothing_silently(isolated):
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    req = VideoRequest("A choir in a cave", mode="std", duration=12, audio=True, references=(REF,),
                       contract=LATEST)
    ledger.create_run("r-latest", req, 1.19)
    at = new_app()
    next(b for b in at.button if (b.key or "") == "card_rerun_r-latest" or
     ((b.key or "").startswith("card_rerun_r-latest"))).click().run()
    assert not at.exception
    text = words(at)
    assert "made with the latest contract; this app sends v1" in text, text
    assert at.session_state["compose_duration"] == 5


def test_a_latest_rerun_under_latest_keeps_sound_duration_and_references(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    req = VideoRequest("A choir in a cave", mode="std", duration=12, audio=True, references=(REF,),
                       contract=LATEST)
    ledger.create_run("r-latest", req, 1.19)
    at = new_app()
    next(b for b in at.button if (b.key or "").startswith("card_rerun_r-latest")).click().run()
    assert not at.exception
    ss = at.session_state
    assert ss["compose_duration"] == 12 and ss["compose_sound"] is True
    assert [e["url"] for e in ss["compose_refs"]] == [REF]
    assert "made with the latest contract" not in words(at)


def _png(w: int = 400, h: int = 400, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def _share(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    return at


def _main_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error")
    parts = [str(e.value) for kind in kinds for e in getattr(at.main, kind)]
    parts += [frame.value.to_csv() for frame in at.main.dataframe]
    return "\n".join(parts).replace("\\", "")


def _seed_latest(isolated: Path) -> str:
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    req = VideoRequest("A choir in a cave", mode="std", duration=12, audio=True, references=(REF,),
                       contract=LATEST)
    ledger.create_run("r-latest-share", req, 1.19)
    ledger.close()
    return "r-latest-share"


def test_the_share_view_shows_sound_and_reference_images_under_latest(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    rid = _seed_latest(isolated)
    text = _main_text(_share({"id": rid}))
    for expected in ("Sound", "on", "Reference image 1", REF, "12 s", "latest"):
        assert expected in text, expected
    assert "this app sends v1" not in text


def test_the_share_view_under_v1_says_the_run_was_made_with_the_latest_contract(isolated):
    rid = _seed_latest(isolated)
    text = _main_text(_share({"id": rid}))
    assert "made with the latest contract; this app sends v1" in text, text
    assert "Sound" in text and "Reference image 1" in text  # shown, never silently dropped


def test_compare_under_latest_offers_sound_and_prices_it_per_cell(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    pills = [w for w in at.get("button_group") if getattr(w, "label", None) == "Duration"]
    assert [o.content for o in pills[0].proto.options] == [f"{d} s" for d in range(3, 16)]
    assert "Sound" in {t.label for t in at.toggle}
    next(t for t in at.text_area if t.label == "Prompt").set_value("Waves on rocks")
    next(t for t in at.toggle if t.label == "Sound").set_value(True)
    at.run()
    assert not at.exception
    labels = [b.label for b in at.button if (b.key or "") == "cmp_submit_grid"]
    # std + pro at 5 s with Sound: 5×0.0368 + 5×0.0625 + 2 × 5×0.0625 = $1.12; Sound $0.63
    assert labels == ["Submit grid · 2 runs · ≈ $1.12 (Sound ≈ $0.63)"], labels


def test_a_bad_reference_image_is_refused_in_words_and_blocks_the_run(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    at = new_app()
    next(t for t in at.text_area if t.label == "Prompt").set_value("A lighthouse, bad reference")
    at.run()
    at.file_uploader(key="compose_ref_files").upload("tiny.png", _png(120, 120), "image/png").run()
    assert not at.exception
    errors = " ".join(unescape_md(e.value) for e in at.error)
    assert "The reference image is 120×120 px; width and height must each be at least 300 px" in errors
    next(b for b in at.button if b.label.startswith("Generate · ")).click().run()
    assert Ledger(f"sqlite:///{isolated / 'ledger.db'}").count_runs() == 0  # nothing written, nothing spent
    at.button(key="compose_ref_remove_0").click().run()
    assert not any("120×120" in unescape_md(e.value) for e in at.error)


def test_a_latest_runs_card_actions_are_refused_under_v1_in_words(isolated):
    """A latest draft met under v1 is never sent (the worker fails it in words, nothing billed); Another
    take of it would send its Sound: refused too, nothing written."""
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    req = VideoRequest("A choir in a cave", mode="std", duration=12, audio=True, contract=LATEST)
    ledger.create_run("r-latest-take", req, 1.19)
    at = new_app()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ledger.get("r-latest-take").state == "draft":
        time.sleep(0.2)
    failed = ledger.get("r-latest-take")
    assert failed.state == "failed" and failed.error_code == "contract" and not failed.task_id, failed
    assert "this app sends v1" in (failed.error_message or "")
    with sqlite3.connect(next(isolated.rglob("local_gateway.db"))) as db:  # nothing reached the gateway
        assert db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
    at.run()
    time.sleep(presses.GUARD)
    take = next(b for b in at.button if (b.key or "").startswith("card_take_r-latest-take"))
    take.click().run()
    assert not at.exception
    assert ledger.count_runs() == 1  # nothing written, nothing sent
    assert "made with the latest contract; this app sends v1" in words(at)


def test_sound_duration_and_references_survive_a_visit_to_another_page(isolated, monkeypatch):
    monkeypatch.setenv("TOAPIS_CONTRACT", "latest")
    at = new_app()
    next(s for s in at.select_slider if s.label == "Duration").set_value(13)
    next(t for t in at.toggle if t.label == "Sound").set_value(True)
    at.run()
    at.file_uploader(key="compose_ref_files").upload("ref.png", _png(), "image/png").run()
    at.switch_page("pages/history.py").run()
    at.switch_page("app.py").run()
    assert not at.exception
    assert next(s for s in at.select_slider if s.label == "Duration").value == 13
    assert next(t for t in at.toggle if t.label == "Sound").value is True
    assert len(at.session_state["compose_refs"]) == 1 and at.session_state["compose_refs"][0]["url"]
