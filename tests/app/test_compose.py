"""Compose page through AppTest, against the embedded local gateway and a real SQLite ledger."""
from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib import presses
from lib.contract import VideoRequest
from lib.ledger import COMPLETED, Ledger
from lib.ui.text import unescape_md

APP = str(Path(__file__).resolve().parents[2] / "app.py")
IMG1 = "https://example.com/first.jpg"
IMG2 = "https://example.com/last.png"


def ledger_of(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = "http://127.0.0.1:8501/"
    return at.run()


def by_label(widgets, label):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}: {[w.label for w in widgets]}"
    return found[0]


def button(at: AppTest, label: str, key_prefix: str = ""):
    # a spending button's label goes on with what it makes and its price: "Generate · Std 720p · …"
    found = [b for b in at.button if (b.label == label or b.label.startswith(label + " · "))
             and (b.key or "").startswith(key_prefix)]
    assert found, f"no button {label!r} ({key_prefix}): {[(b.label, b.key) for b in at.button]}"
    return found[0]


def texts(at: AppTest, kind: str) -> list[str]:
    return [unescape_md(e.value) for e in getattr(at, kind)]


def test_compose_renders_every_field():
    at = new_app()
    assert not at.exception
    labels = {w.label for w in [*at.text_area, *at.radio, *at.checkbox, *at.file_uploader, *at.button]}
    for label in ("Prompt", "Negative prompt", "Mode", "Duration", "Aspect ratio", "Watermark",
                  "First frame", "Last frame", "Generate · Std 720p · 5 s · ≈ $0.18",
                  "Compare std vs pro · 5 s · ≈ $0.50"):
        assert label in labels, sorted(labels)
    assert by_label(at.radio, "Mode").options == ["std (720p)", "pro (1080p)"]
    assert by_label(at.radio, "Duration").options == ["5 s", "10 s", "15 s"]
    assert by_label(at.radio, "Aspect ratio").options == ["16:9", "9:16", "1:1"]
    assert any("0 / 2500" in c for c in texts(at, "caption"))
    assert any("(estimate)" in m for m in texts(at, "markdown"))
    sidebar = " ".join(e.value for e in at.sidebar.markdown) + " ".join(e.value for e in at.sidebar.caption)
    assert "Local gateway" in sidebar and "synthetic" in sidebar


def test_estimate_and_counter_follow_every_change():
    at = new_app()
    by_label(at.text_area, "Prompt").set_value("a heron")
    by_label(at.radio, "Mode").set_value("pro")
    by_label(at.radio, "Duration").set_value(10)
    at.run()
    assert any(c.startswith("7 / 2500") for c in texts(at, "caption"))
    assert any("≈ $0.63 (estimate)" in m for m in texts(at, "markdown"))   # 10 s × $0.0625, half up
    # the buttons follow the form: what they make and what it costs
    assert "Generate · Pro 1080p · 10 s · ≈ $0.63" in [b.label for b in at.button]
    assert "Compare std vs pro · 10 s · ≈ $0.99" in [b.label for b in at.button]


def test_validation_errors_show_inline_and_nothing_is_written(isolated):
    at = new_app()
    by_label(at.text_input, "First frame URL").set_value("ftp://example.com/a.png")
    by_label(at.radio, "Duration").set_value(15)
    at.run()
    errors = " ".join(texts(at, "error"))
    assert "must start with http:// or https://" in errors
    assert "15 s is text-to-video only" in errors
    assert "prompt is empty" not in errors                       # not before the first press
    button(at, "Generate").click().run()
    errors = " ".join(texts(at, "error"))
    assert "The prompt is empty" in errors
    assert ledger_of(isolated).count_runs() == 0


def test_a_run_completes_and_plays_the_archived_video(isolated, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_PRESS_WINDOW", "30")  # "the same press" must not depend on the load
    at = new_app()
    by_label(at.text_area, "Prompt").set_value("A paper boat on a pond, test run")
    at.run()
    button(at, "Generate").click().run()
    ledger = ledger_of(isolated)
    runs = ledger.list_runs()
    assert len(runs) == 1 and runs[0].request.prompt == "A paper boat on a pond, test run"
    run_id = runs[0].run_id
    assert by_label(at.text_area, "Prompt").value == "A paper boat on a pond, test run"  # kept for tweaks
    # the same press again (same settings, inside the window): nothing new, and the page says so
    button(at, "Generate").click().run()
    assert ledger.count_runs() == 1
    note = " ".join(unescape_md(e.value) for e in at.get_by_key("compose_press_note").info)
    assert note.startswith("Already sent — see the card below") and "nothing new was sent" in note

    deadline = time.monotonic() + 60
    videos = []
    while time.monotonic() < deadline:
        at.run()
        videos = at.get("video")
        if videos:
            break
        time.sleep(0.3)
    assert videos, f"no video; run is {ledger.get(run_id)}"
    assert "/archive/videos/" in videos[0].proto.url and videos[0].proto.url.endswith(".mp4")
    run = ledger.get(run_id)
    assert run.state == COMPLETED and run.video_path
    card_text = " ".join(texts(at, "caption"))
    assert "Synthetic video from the local gateway" in card_text and "Finished in" in card_text
    assert [b.proto.url for b in at.get("link_button") if b.proto.label == "Download"] == [
        videos[0].proto.url + "?download=1"]
    assert any(c.value.endswith(f"/s/{run_id}") for c in at.code)  # the short link that unfurls
    assert any('<iframe src="http://127.0.0.1:' in c.value and f"/e/{run_id}" in c.value for c in at.code)
    assert any("$TOAPIS_API_KEY" in c.value for c in at.code)

    # every spending button on the card names what it makes and its price
    labels = [b.label for b in at.button if (b.key or "").endswith(run_id)]
    assert "Promote · Pro 1080p · 5 s · ≈ $0.31" in labels, labels
    assert "Extend to 10 s · ≈ $0.37" in labels, labels
    assert "Another take · ≈ $0.18" in labels, labels
    # promote: a pro child of the same prompt AND the same duration, at the price on the button
    time.sleep(presses.GUARD)  # a person watches the video first: past the guard
    button(at, "Promote · Pro 1080p · 5 s · ≈ $0.31", f"card_promote_{run_id}").click().run()
    children = ledger.children(run_id)
    assert len(children) == 1
    child = children[0]
    assert child.request == run.request.replace(mode="pro", duration=5) and child.source == "promote"
    assert child.est_cost == 0.3125                                     # $0.31, as the button said
    assert run_id not in child.run_id                                   # its own random id
    button(at, "Promote", f"card_promote_{run_id}").click().run()  # a second click: no second child
    assert len(ledger.children(run_id)) == 1

    # Extend: the same prompt in the same mode, 10 s, only through its own priced button
    time.sleep(presses.GUARD)
    button(at, "Extend to 10 s · ≈ $0.37", f"card_extend_{run_id}").click().run()
    longer = [c for c in ledger.children(run_id) if c.source == "extend"]
    assert len(longer) == 1 and longer[0].request == run.request.replace(mode="std", duration=10)
    button(at, "Extend to 10 s", f"card_extend_{run_id}").click().run()   # a repeat: nothing new
    assert len([c for c in ledger.children(run_id) if c.source == "extend"]) == 1

    # Another take: a new run with the same settings, priced on the button, marked as a new take
    time.sleep(presses.GUARD)  # another button right after a press is held (the list may have moved)
    take_button = button(at, "Another take · ≈ $0.18", f"card_take_{run_id}")
    take_button.click().run()
    takes = [c for c in ledger.children(run_id) if c.source == "rerun"]
    assert len(takes) == 1 and takes[0].request == run.request and takes[0].parent_id == run_id
    button(at, "Another take · ≈ $0.18", f"card_take_{run_id}").click().run()   # a repeat: nothing new
    assert len([c for c in ledger.children(run_id) if c.source == "rerun"]) == 1
    assert any("New take" in m.value for m in at.get_by_key(f"card_{takes[0].run_id}").markdown)


def test_rerun_restores_every_setting_including_images(isolated):
    ledger = ledger_of(isolated)
    req = VideoRequest("Old lighthouse in a storm", mode="pro", duration=10, aspect_ratio="9:16",
                       image_urls=(IMG1, IMG2), negative_prompt="people", watermark=True)
    ledger.create_run("r-old", req, 0.625)
    at = new_app()
    button(at, "Re-run", "card_rerun_r-old").click().run()
    assert not at.exception
    ss = at.session_state
    assert ss["compose_prompt"] == req.prompt and ss["compose_negative"] == "people"
    assert ss["compose_mode"] == "pro" and ss["compose_duration"] == 10 and ss["compose_aspect"] == "9:16"
    assert ss["compose_watermark"] is True
    assert ss["compose_first_frame_url"] == IMG1 and ss["compose_last_frame_url"] == IMG2
    assert by_label(at.text_area, "Prompt").value == req.prompt
    assert by_label(at.radio, "Aspect ratio").value == "9:16"


def test_rerun_link_from_a_share_page(isolated):
    ledger = ledger_of(isolated)
    request = VideoRequest("Snowy owl", mode="std", duration=10, aspect_ratio="1:1")
    ledger.create_run("r-link-snowy-owl", request, 0.3)  # run ids are 8-64 characters (lib.query.is_id)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["rerun"] = "r-link-snowy-owl"
    at.run()
    assert by_label(at.text_area, "Prompt").value == "Snowy owl"
    assert by_label(at.radio, "Duration").value == 10 and by_label(at.radio, "Aspect ratio").value == "1:1"


def test_budget_refusal_with_the_numbers(isolated, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "0.1")
    at = new_app()
    by_label(at.text_area, "Prompt").set_value("an expensive idea")
    at.run()
    assert any("Over budget" in e and "$0.18" in e and "$0.10" in e for e in texts(at, "error"))
    button(at, "Generate").click().run()
    refusal = [e for e in texts(at, "error") if "budget is left" in e and "PLAYGROUND_BUDGET_USD" in e]
    assert refusal and "$0.18" in refusal[0]
    assert ledger_of(isolated).count_runs() == 0


def test_compare_pair_is_one_group_and_opens_it(isolated):
    at = new_app()
    by_label(at.text_area, "Prompt").set_value("two takes")
    at.run()
    button(at, "Compare std vs pro").click().run()
    assert not at.exception
    runs = ledger_of(isolated).list_runs()
    assert sorted(r.request.mode for r in runs) == ["pro", "std"]
    assert len({r.group_id for r in runs}) == 1 and runs[0].group_id
    assert at.query_params.get("group") in (runs[0].group_id, [runs[0].group_id])


def test_a_card_says_saving_until_archived_and_never_plays_a_gateway_path(isolated):
    """A card never swaps sources: between "completed" and "archived" it shows "Saving…" and no player,
    and a gateway "link" that is a server path (or any non-http string) never reaches st.video."""
    from lib.ledger import bulk_insert, run_row

    ledger = ledger_of(isolated)
    now = time.time()
    rows = []
    cases = (("saving: a fox", "https://files.example/v.mp4"), ("evil: a cat", "/proc/self/environ"))
    for prompt, url in cases:
        row = run_row(Ledger.new_id(), VideoRequest(prompt=prompt), 0.18, now=now - 60, state=COMPLETED,
                      task_id=f"task_{prompt[:4]}_{int(now)}")
        row.update(submitted_at=now - 59, completed_at=now - 1, next_poll_at=None, video_url=url,
                   expires_at=now + 80_000)
        rows.append(row)
    bulk_insert(ledger, rows)
    at = new_app()
    assert not at.exception, at.exception
    saving = [i.value for i in at.info if i.value.startswith("Saving…")]
    assert len(saving) == 2  # both cards: the gateway's link is not a source while saving
    assert not at.get("video") and not [b for b in at.get("link_button") if "gateway" in b.proto.label]
    ledger.close()


def test_a_rerun_of_an_uploaded_frame_keeps_it_out_of_the_paste_box(isolated):
    """An upload to the local gateway is an address of this machine: it comes back as the frame (with a
    Remove button), is sent again, and never shows in the paste box."""
    ledger = ledger_of(isolated)
    internal = "http://127.0.0.1:45678/files/abc123.png"
    req = VideoRequest("A lake at dusk", mode="std", duration=5, image_urls=(internal,))
    ledger.create_run("r-up", req, 0.18)
    at = new_app()
    button(at, "Re-run", "card_rerun_r-up").click().run()
    assert not at.exception
    ss = at.session_state
    assert ss["compose_first_frame_url"] == "" and ss["compose_first_frame_upload"]["url"] == internal
    assert all("127.0.0.1" not in (t.value or "") for t in at.text_input)
    from lib.ui import compose_form

    with_frame = at.session_state["compose_first_frame_upload"]
    assert with_frame["name"] == compose_form.RESTORED_NAME
    button(at, "Generate", "compose_generate").click().run()
    sent = [r for r in ledger.list_runs(limit=5) if r.run_id != "r-up"]
    assert len(sent) == 1 and sent[0].request.image_urls == (internal,)
    button(at, "Remove", "compose_first_frame_remove").click().run()
    assert "compose_first_frame_upload" not in at.session_state
