"""The frame scrubber and Compose's chain note through AppTest (lib/ui/chain_controls.py): a real ledger, a
real archive holding an MP4 rendered by the local gateway's renderer, and the embedded gateway for uploads."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from lib.local_gateway.render import render_clip
from lib.ui import chain_controls, state
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PROMPT = "A lantern swinging in a dark barn, warm light, slow pan"


def _scrubber_script() -> None:
    import streamlit as st

    from lib.ui import chain_controls, state

    services = state.services()
    run = services.ledger.get(st.session_state["test_run_id"])
    chain_controls.scrubber(services, run, key="t")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    render_clip(path, prompt="lantern", mode="std", duration=2, aspect="16:9")
    return path


def seed(isolated: Path, clip: Path | None, duration: int = 5) -> str:
    """A completed run of PROMPT; archived (its file in the app's archive folder) when `clip` is given."""
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        run_id = Ledger.new_id()
        now = time.time() - 120
        row = run_row(run_id, VideoRequest(prompt=PROMPT, mode="std", duration=duration, aspect_ratio="16:9",
                                           negative_prompt="blur"), 0.18, now=now, state="completed",
                      task_id=f"task_{run_id[:12]}")
        row.update(submitted_at=now + 1, completed_at=now + 20, next_poll_at=None)
        if clip is not None:
            key = f"videos/{Ledger.new_id()}.mp4"
            target = isolated / "archive" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(clip.read_bytes())
            row.update(video_path=key, archived_at=now + 25)
        bulk_insert(ledger, [row])
        return run_id
    finally:
        ledger.close()


def scrubber(run_id: str) -> AppTest:
    at = AppTest.from_function(_scrubber_script, default_timeout=30)
    at.session_state["test_run_id"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> str:
    return " ".join(str(c.value) for c in at.caption)


def test_the_scrubber_starts_on_the_last_frame_and_shows_any_chosen_one_at_full_size(
        isolated: Path, clip: Path) -> None:
    at = scrubber(seed(isolated, clip, duration=2))
    slider = at.select_slider(key="t_frame")
    assert slider.value == 47 and len(slider.options) == 48
    assert "Frame 48 of 48 at 1.96 s (the last frame)" in captions(at)
    assert "full size 1280×720 px" in captions(at)
    assert len(at.get("image")) == 1
    slider.set_value(0).run()
    assert not at.exception
    assert "Frame 1 of 48 at 0.00 s" in captions(at) and "(the last frame)" not in captions(at)


def test_continue_uploads_the_frame_and_opens_compose_with_it_and_the_same_settings(
        isolated: Path, clip: Path) -> None:
    run_id = seed(isolated, clip, duration=2)
    at = scrubber(run_id)
    at.button(key="t_use_first").click().run()
    assert not at.exception, at.exception
    pending = at.session_state[chain_controls.PENDING]
    assert pending["parent_id"] == run_id and pending["role"] == "first"
    assert pending["frame_time"] == pytest.approx(1.958333, abs=1e-3)
    restore = VideoRequest.from_dict(at.session_state[state.RESTORE_KEY])
    assert restore.prompt == PROMPT and restore.negative_prompt == "blur"
    assert restore.image_urls == (pending["url"],)
    assert at.session_state[state.NAV_KEY][0] == "app.py"
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        assert ledger.count_runs() == 1  # choosing a frame writes no run and sends nothing
    finally:
        ledger.close()


def test_use_as_last_frame_keeps_the_form_honest_about_the_missing_first_frame(isolated: Path,
                                                                              clip: Path) -> None:
    at = scrubber(seed(isolated, clip, duration=5))
    at.button(key="t_use_last").click().run()
    pending = at.session_state[chain_controls.PENDING]
    assert pending["role"] == "last"
    app = AppTest.from_file(APP, default_timeout=30)
    app.session_state[chain_controls.PENDING] = pending
    app.session_state[state.RESTORE_KEY] = at.session_state[state.RESTORE_KEY]
    app.run()
    assert not app.exception, app.exception
    words = " ".join(unescape_md(str(e.value)) for e in [*app.info, *app.caption, *app.error])
    assert "the last frame is the frame at 4.96 s" not in words  # the 2 s file's last frame is 1.96 s
    assert "the last frame is the frame at 1.96 s" in words
    assert "A last frame needs a first frame" in words  # said before any spend; Generate sends nothing
    app.button(key="compose_generate_button").click().run()
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        assert ledger.count_runs() == 1
    finally:
        ledger.close()


def test_a_run_without_an_archive_says_so_and_offers_no_button(isolated: Path) -> None:
    at = scrubber(seed(isolated, None))
    assert "no archived video yet" in " ".join(str(e.value) for e in at.error)
    assert not [b for b in at.button if b.key and b.key.startswith("t_use")]


def test_generate_in_compose_links_the_new_run_as_the_next_shot(isolated: Path, clip: Path) -> None:
    run_id = seed(isolated, clip, duration=5)  # a 5 s run (its archived file here is 2 s: cheap)
    at = scrubber(run_id)
    at.button(key="t_use_first").click().run()
    pending = at.session_state[chain_controls.PENDING]
    restore = at.session_state[state.RESTORE_KEY]

    app = AppTest.from_file(APP, default_timeout=30)
    app.session_state[chain_controls.PENDING] = pending
    app.session_state[state.RESTORE_KEY] = restore
    app.run()
    assert not app.exception, app.exception
    note = " ".join(unescape_md(str(i.value)) for i in app.info)
    assert "Next shot of a chain" in note and "frame at 1.96 s" in note
    assert "Settings restored" in note and "not offered" not in note  # every setting fits the form
    app.button(key="compose_generate_button").click().run()
    assert not app.exception, app.exception
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        newest = ledger.list_runs(limit=1)[0]
        assert newest.run_id != run_id and newest.request.image_urls == (pending["url"],)
        link = ledger.chain_link(newest.run_id)
        assert link is not None and link.parent_run_id == run_id and link.position == 2
    finally:
        ledger.close()
    assert chain_controls.PENDING not in app.session_state  # linked once; the next Generate is ordinary


def test_the_sequence_page_lists_the_shots_and_says_what_export_needs(isolated: Path, clip: Path) -> None:
    first, second = seed(isolated, clip, duration=5), seed(isolated, None, duration=5)
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        ledger.link_shot(second, first, 1.958, "first")
        seq = ledger.sequence_for(second)
    finally:
        ledger.close()
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.query_params["id"] = seq.sequence_id
    at.switch_page("pages/sequence.py").run()
    assert not at.exception, at.exception
    words = " ".join(unescape_md(str(e.value)) for e in [*at.info, *at.caption, *at.markdown])
    assert "2 shots" in words and "Shot 1" in words and "Shot 2" in words
    assert "Shot 2 is not saved yet" in words  # the export waits for every shot, in words
    assert at.button(key="sequence_export").disabled
    assert first not in words and second not in words  # a public page: no run ids
