"""The share view (pages/run.py) through AppTest: one run, a group, bad links, plain-text prompts, Re-run."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from lib.ui import compose_form

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
EVIL = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click me](https://evil.test) **bold** :red[x]"


@pytest.fixture
def ledger(isolated: Path) -> Any:
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    yield led
    led.close()


def seed(ledger: Ledger, request: VideoRequest, *, state_: str = "completed", **cols: Any) -> str:
    run_id = cols.pop("run_id", None) or Ledger.new_id()
    created = cols.pop("created", time.time() - 300)
    row = run_row(run_id, request, cols.pop("est_cost", 0.184), now=created, state=state_,
                  group_id=cols.pop("group_id", None), label=cols.pop("label", None),
                  task_id=f"task_{run_id[:12]}")
    if state_ in ("completed", "failed"):
        row.update(submitted_at=created + 1, completed_at=created + 21, next_poll_at=None)
    else:  # seeded task ids are not on the gateway: keep the worker from looking them up
        row.update(submitted_at=created + 1, next_poll_at=time.time() + 3600)
    row.update(cols)
    bulk_insert(ledger, [row])
    return run_id


def share(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    return at


def main_text(at: AppTest) -> str:
    """Everything the main area shows as text (not the sidebar, which is the frame's)."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "text", "code", "info", "warning", "error",
                 "success"):
        parts += [str(e.value) for e in getattr(at.main, kind)]
    for frame in at.main.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(parts).replace("\\", "")  # Markdown escapes are not what the reader sees


def archived(**extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"video_path": f"videos/{extra.pop('name', 'vvvvvvvv')}.mp4",
            "poster_path": "posters/vvvvvvvv.jpg", "archived_at": now - 10, **extra}


def test_one_run_by_id(ledger: Ledger) -> None:
    req = VideoRequest(prompt="a lighthouse at dusk", mode="pro", duration=10, aspect_ratio="1:1",
                       negative_prompt="people", watermark=True)
    rid = seed(ledger, req, **archived(name="lighthouse"))
    other = seed(ledger, VideoRequest(prompt="SECRET OTHER RUN"))
    at = share(id=rid)
    assert [t.value for t in at.title] == ["Shared run"]
    video = at.get("video")
    assert len(video) == 1 and video[0].proto.url.endswith("/archive/videos/lighthouse.mp4")
    assert at.get_by_key("share_prompt").code[0].value == "a lighthouse at dusk"
    text = main_text(at)
    for expected in ("pro (1080p)", "10 s", "1:1", "1080×1080", "people", "on", "≈ $0.18 (estimate)", "20 s"):
        assert expected in text, expected
    assert "SECRET OTHER RUN" not in text and other not in text
    assert "local-playground" not in text  # the bearer key of the local gateway never shows
    assert [b.label for b in at.button if b.key == "share_rerun"] == ["Re-run this config"]


@pytest.mark.parametrize("query", [
    {"id": "AAAAAAAAAAAAAAAAAAAAAA"},          # well-formed, unknown
    {"id": "../../etc/passwd"},                # malformed
    {"id": "<script>alert(1)</script>"},
    {"group": "BBBBBBBBBBBBBBBBBBBBBB"},
    {"group": ""},
])
def test_unknown_or_malformed_links_get_a_clear_message(ledger: Ledger, query: dict[str, str]) -> None:
    seed(ledger, VideoRequest(prompt="SECRET OTHER RUN"))
    at = share(**query)
    assert [w.value for w in at.warning] == [
        "This link does not match any run. Check you copied the whole link."
    ]
    assert not at.get("video") and "SECRET OTHER RUN" not in main_text(at)


def test_no_id_at_all_explains_the_page(ledger: Ledger) -> None:
    at = share()
    assert "share link" in at.warning[0].value


def test_prompt_with_markup_is_plain_text(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt=EVIL, negative_prompt=EVIL), **archived())
    at = share(id=rid)
    assert at.get_by_key("share_prompt").code[0].value == EVIL
    for el in [*at.markdown, *at.caption]:
        assert "<script>" not in el.value and "onerror=" not in el.value
        assert "](https://evil.test)" not in el.value and ":red[" not in el.value
    # the only HTML on the page is the frame's constant CSS (lib/ui/page_script.POPOVER_COPY_CSS)
    from lib.ui import page_script

    assert [h.proto.body for h in at.get("html")] in ([], [f"<style>{page_script.POPOVER_COPY_CSS}</style>"])
    settings = at.get_by_key("share_settings").dataframe[0].value
    assert EVIL in list(settings.iloc[:, 1])


def test_rerun_this_config_fills_compose(ledger: Ledger) -> None:
    req = VideoRequest(prompt="a koi pond, overhead", mode="pro", duration=10, aspect_ratio="9:16",
                       negative_prompt="text, logo", watermark=True,
                       image_urls=("https://img.test/first.png", "https://img.test/last.png"))
    rid = seed(ledger, req, **archived())
    at = share(id=rid)
    at.button(key="share_rerun").click().run()
    assert not at.exception, at.exception
    ss = at.session_state
    assert ss[compose_form.PROMPT] == "a koi pond, overhead"
    assert ss[compose_form.MODE] == "pro" and ss[compose_form.DURATION] == 10
    assert ss[compose_form.ASPECT] == "9:16" and ss[compose_form.NEGATIVE] == "text, logo"
    assert ss[compose_form.WATERMARK] is True
    assert ss[compose_form.url_key("first_frame")] == "https://img.test/first.png"
    assert ss[compose_form.url_key("last_frame")] == "https://img.test/last.png"
    assert at.text_area(key=compose_form.PROMPT).value == "a koi pond, overhead"


def test_a_group_shows_every_cell(ledger: Ledger) -> None:
    gid = Ledger.new_id()
    base = VideoRequest(prompt="a paper boat in rain", aspect_ratio="16:9")
    std = seed(ledger, base.replace(mode="std", duration=5), group_id=gid, label="std",
               **archived(name="ssssssss"))
    pro = seed(ledger, base.replace(mode="pro", duration=5), group_id=gid, label="pro", est_cost=0.3125,
               **archived(name="pppppppp"))
    running = seed(ledger, base.replace(mode="pro", duration=10), group_id=gid, state_="in_progress",
                   progress=55)
    seed(ledger, VideoRequest(prompt="SECRET OTHER RUN"))
    at = share(group=gid)
    assert [t.value for t in at.title] == ["Shared comparison"]
    cells = [at.get_by_key(f"share_cell_{r}") for r in (std, pro, running)]
    assert all(c is not None for c in cells)
    assert not at.get("video")  # the cells play in the synced player, each video inside its own cell
    cell_srcs = {r: re.findall(r'<video [^>]*src="([^"]+)"', " ".join(h.proto.body for h in c.get("html")))
                 for r, c in zip((std, pro, running), cells, strict=True)}
    assert cell_srcs == {std: ["/archive/videos/ssssssss.mp4"], pro: ["/archive/videos/pppppppp.mp4"],
                         running: []}, cell_srcs
    bars = [h.proto.body for h in at.get("html") if "data-sync-player" in h.proto.body]
    assert len(bars) == 1 and 'data-count="2"' in bars[0]
    # std | pro columns: the 5 s row holds std and pro, the 10 s row only pro (std is not in this grid)
    assert "Not in this grid." in main_text(at)
    text = main_text(at)
    assert "std 720p · 5 s · 16:9" in text and "pro 1080p · 10 s · 16:9" in text
    assert "3 runs · 2 finished" in text
    assert "SECRET OTHER RUN" not in text
    # one shared prompt, shown once above the grid
    assert at.get_by_key("share_prompt").code[0].value == "a paper boat in rain"
    assert [p.value for p in at.get("progress")] == [55]
    grid_button = at.button(key="share_rerun_grid")
    assert grid_button.label == "Re-run this grid"
    assert grid_button.disabled is False  # the grid's runs carry settings, and Compare exists


# ------------------------------------------------------------------ the video area: only vetted sources
GATEWAY_URL = "https://files.toapis.example/videos/tsk_01abc/clip.mp4"


def _links(at: AppTest) -> list[tuple[str, str]]:
    return [(b.proto.label, b.proto.url) for b in at.get("link_button")]


def test_between_completed_and_archived_it_says_saving_with_no_player(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt="a fox"), video_url=GATEWAY_URL, expires_at=time.time() + 86000)
    at = share(id=rid)
    assert any(i.value.startswith("Saving…") for i in at.info)
    assert not at.get("video") and not _links(at)  # the gateway's link is not offered while saving


def test_while_archiving_is_retried_the_gateway_copy_is_a_link_not_a_player(ledger: Ledger) -> None:
    note = ("Could not save the video to the archive folder (No space left on device). Free some disk "
            "space … Next try in 5.0 s.")
    rid = seed(ledger, VideoRequest(prompt="a fox"), video_url=GATEWAY_URL, expires_at=time.time() + 7000,
               error_message=note)
    at = share(id=rid)
    assert not at.get("video")  # no player: nothing will swap its source when the archived copy arrives
    assert _links(at) == [("Watch the gateway's copy meanwhile", GATEWAY_URL)]
    text = main_text(at)
    assert "No space left on device" in text and "Its link expires in 1 h 56 min" in text


def test_when_archiving_failed_the_vetted_gateway_link_plays_with_its_expiry(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt="a fox"), video_url=GATEWAY_URL, expires_at=time.time() + 7000,
               error_code="too_large",
               error_message="The video is larger than the archive's limit of 500 MB, so it was not saved.")
    at = share(id=rid)
    assert [v.proto.url for v in at.get("video")] == [GATEWAY_URL]
    text = main_text(at)
    assert "larger than the archive's limit" in text and "gateway's own copy" in text
    assert "Its link expires in 1 h 56 min" in text


@pytest.mark.parametrize("url", ["/proc/self/environ", "file:///proc/self/environ", "../../ledger.db",
                                 "proc/self/environ", "https://user:pw@files.example/x.mp4"])
@pytest.mark.parametrize("failed", [True, False], ids=["archive-failed", "saving"])
def test_a_gateway_path_never_reaches_a_player_in_an_anonymous_view(ledger: Ledger, monkeypatch,
                                                                     url: str, failed: bool) -> None:
    """The attack of issue 13: a gateway answering `"url": "/proc/self/environ"` made st.video read and
    serve that file. Here such a run says so in words and no player or link points anywhere."""
    monkeypatch.setenv("PLAYGROUND_CANARY", "CANARY-ENV-VALUE-7731")
    cols: dict[str, Any] = {"video_url": url, "expires_at": time.time() + 7200}
    if failed:
        cols.update(error_code="bad_url",
                    error_message="The gateway gave a video link that is not http(s), so it was not fetched.")
    rid = seed(ledger, VideoRequest(prompt="a fox"), **cols)
    at = share(id=rid)
    assert not at.get("video") and not _links(at)
    text = main_text(at)
    assert "CANARY-ENV-VALUE" not in text and url not in text
    if failed:
        assert "not http(s)" in text and "not a web address this app will play" in text


def test_an_archived_run_plays_only_the_archive_route(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt="a fox"), video_url="/proc/self/environ",
               **archived(name="Tok3nTok3nTok3nTok3n_x-y"))
    at = share(id=rid)
    urls = [v.proto.url for v in at.get("video")]
    assert len(urls) == 1 and urls[0].endswith("/archive/videos/Tok3nTok3nTok3nTok3n_x-y.mp4")
    assert urls[0].startswith(("http://", "https://"))  # absolute: st.video never reads it from disk


def test_a_cell_link_shows_that_cell_and_nothing_of_its_grid(ledger: Ledger) -> None:
    gid = Ledger.new_id()
    mine = seed(ledger, VideoRequest(prompt="a red kite over dunes", mode="std", duration=5), group_id=gid,
                label="Prompt 1 · std", **archived(name="kite-clip-0001"))
    other = seed(ledger, VideoRequest(prompt="OTHER CELL: a fox in snow", mode="pro", duration=5),
                 group_id=gid, label="Prompt 2 · pro", **archived(name="fox-clip-0002"))
    at = share(id=mine)
    assert [t.value for t in at.title] == ["Shared run"]
    assert [v.proto.url.rsplit("/", 1)[-1] for v in at.get("video")] == ["kite-clip-0001.mp4"]
    assert all(gid not in str(p.proto) for p in at.get("page_link"))  # sidebar links included
    seen = main_text(at) + "".join(str(e.proto) for e in at.main.get("page_link"))
    for leak in (gid, other, "OTHER CELL", "fox-clip-0002", "Prompt 2", "comparison"):
        assert leak not in seen, leak
