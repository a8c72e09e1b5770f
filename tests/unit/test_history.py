"""lib/history.py: filters, paging, countdowns, rows, CSV, stats and share-link parsing, on a real ledger."""
from __future__ import annotations

import csv
import io
import time
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lib import history
from lib.contract import VideoRequest
from lib.ledger import STATES, Ledger, RunFilter, bulk_insert, run_row

NOW = 1_780_000_000.0  # a fixed "now" (2026-05-28) so countdowns and dates are exact


def seed(ledger: Ledger, prompt: str = "a red fox", *, state: str = "completed", mode: str | None = "std",
         duration: int | None = 5, aspect: str | None = "16:9", created: float = NOW - 3600,
         **cols: Any) -> str:
    """Write one run row with exactly the columns a test needs (the ledger's own row builder)."""
    run_id = cols.pop("run_id", None) or Ledger.new_id()
    req = VideoRequest(prompt=prompt, mode=mode, duration=duration, aspect_ratio=aspect,
                       negative_prompt=cols.pop("negative_prompt", None),
                       image_urls=tuple(cols.pop("image_urls", ())), watermark=cols.pop("watermark", None))
    row = run_row(run_id, req, cols.pop("est_cost", 0.184), now=created, state=state,
                  group_id=cols.pop("group_id", None), label=cols.pop("label", None),
                  task_id=cols.pop("task_id", f"task_{run_id[:10]}"))
    if state in ("completed", "failed"):
        row.update(submitted_at=created + 1, completed_at=created + 43, next_poll_at=None)
    row.update(cols)
    bulk_insert(ledger, [row])
    return run_id


# ---------------------------------------------------------------- filters and paging

def test_parse_filter_keeps_known_values_only() -> None:
    # 7 s exists under TOAPIS_CONTRACT=latest (3–15 s), so History can find such runs; 2 and 16 never do
    flt = history.parse_filter("  fox  ", ["completed", "bogus"], ["pro", "ultra"],
                               ["10", 5, "x", 7, 2, "16"])
    assert flt == RunFilter(text="fox", states=("completed",), modes=("pro",), durations=(10, 5, 7))
    assert history.parse_filter("   ") == RunFilter()


def test_date_range_covers_whole_days_in_the_viewers_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    since, until = history.date_bounds((date(2026, 5, 1), date(2026, 5, 3)), paris)
    assert datetime.fromtimestamp(since, paris) == datetime(2026, 5, 1, tzinfo=paris)
    assert datetime.fromtimestamp(until, paris) == datetime(2026, 5, 4, tzinfo=paris)
    assert until - since == 3 * 86400
    # half-picked range (st.date_input gives a 1-tuple): from that day on
    may_first = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    assert history.date_bounds((date(2026, 5, 1),), UTC) == (may_first, None)
    assert history.date_bounds((), UTC) == (None, None)
    assert history.date_bounds(None) == (None, None)


def test_tz_from_name_falls_back_to_utc() -> None:
    assert history.tz_from_name("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert history.tz_from_name("Not/AZone") is UTC
    assert history.tz_from_name(None) is UTC


def test_filters_reach_the_database(sqlite_ledger: Ledger) -> None:
    day = datetime(2026, 5, 10, 12, tzinfo=UTC).timestamp()
    seed(sqlite_ledger, "a red fox in snow", created=day)
    seed(sqlite_ledger, "blue whale", mode="pro", duration=10, created=day + 86400)
    seed(sqlite_ledger, "red balloon", state="failed", created=day + 2 * 86400)
    count = sqlite_ledger.count_runs
    assert count(history.parse_filter("RED")) == 2
    assert count(history.parse_filter(modes=["pro"])) == 1
    assert count(history.parse_filter(durations=["5"], states=["completed"])) == 1
    assert count(history.parse_filter(dates=(date(2026, 5, 11), date(2026, 5, 12)))) == 2
    assert count(history.parse_filter(dates=(date(2026, 5, 10), date(2026, 5, 10)))) == 1


def test_paging_numbers() -> None:
    assert history.page_count(0) == 1
    assert history.page_count(120, 25) == 5
    assert history.clamp_page(9, 120, 25) == 5
    assert history.clamp_page(0, 120, 25) == 1
    assert history.clamp_page(None, 120) == 1
    assert history.page_offset(2, 25) == 25
    assert history.page_caption(2, 120, 25) == "Runs 26–50 of 120"
    assert history.page_caption(5, 120, 25) == "Runs 101–120 of 120"
    assert history.page_caption(1, 1) == "1 run"
    assert history.page_caption(1, 0) == "No runs match these filters."


# ---------------------------------------------------------------- per-run facts

def test_expiry_text_for_each_kind_of_run(sqlite_ledger: Ledger) -> None:
    get = sqlite_ledger.get
    archived = seed(sqlite_ledger, video_path="videos/a.mp4", archived_at=NOW - 10, video_url="http://g/v.mp4")
    live = seed(sqlite_ledger, video_url="http://g/v.mp4", expires_at=NOW + 23 * 3600 + 12 * 60 + 30)
    gone = seed(sqlite_ledger, video_url="http://g/v.mp4", expires_at=NOW - 7200)
    soon = seed(sqlite_ledger, video_url="http://g/v.mp4", expires_at=NOW + 30)
    no_expiry = seed(sqlite_ledger, video_url="http://g/v.mp4", gateway_completed_at=NOW - 3600)
    failed = seed(sqlite_ledger, state="failed")
    running = seed(sqlite_ledger, state="in_progress", progress=40)
    assert history.expiry_text(get(archived), NOW) == "archived"
    assert history.expiry_text(get(live), NOW) == "expires in 23 h 12 min"
    assert history.expiry_text(get(gone), NOW) == "expired 2 h 00 min ago"
    assert history.expiry_text(get(soon), NOW) == "expires in < 1 min"
    # no expires_at from the gateway: its URLs last 24 h from completion
    assert history.expiry_text(get(no_expiry), NOW) == "expires in 23 h 00 min"
    assert history.expiry_text(get(failed), NOW) == "no video"
    assert history.expiry_text(get(running), NOW) == "not finished"
    assert history.state_label(get(running)) == "Generating 40%"  # the card's words (lib.state_words)


def test_time_to_finish_is_send_to_finish(sqlite_ledger: Ledger) -> None:
    done = sqlite_ledger.get(seed(sqlite_ledger))
    assert history.time_to_finish(done) == pytest.approx(42.0)
    assert history.time_to_finish(sqlite_ledger.get(seed(sqlite_ledger, state="queued"))) is None


def test_table_rows_are_plain_values(sqlite_ledger: Ledger) -> None:
    prompt = "<script>alert(1)</script> **bold** [x](javascript:alert(1))"
    rid = seed(sqlite_ledger, prompt, mode="pro", duration=10, aspect="9:16", poster_path="posters/p.jpg",
               video_path="videos/p.mp4", archived_at=NOW, est_cost=0.625)
    recovered = sqlite_ledger.recover("task_from_curl")
    runs = sqlite_ledger.list_runs()
    rows = history.table_rows(runs, NOW, lambda r: f"/archive/{r.poster_path}" if r.poster_path else None)
    by_id = {r["run_id"]: r for r in rows}
    row = by_id[rid]
    assert list(row) == list(history.TABLE_COLUMNS)
    assert row["prompt"] == prompt  # exactly the characters typed
    assert (row["state"], row["mode"], row["duration"], row["aspect"]) == ("Done", "pro", "10 s", "9:16")
    assert row["est_cost"] == 0.63  # cents, rounded half up as the card's "$0.63" (lib.money)
    assert row["time_to_finish"] == "42 s"
    assert row["video"] == "archived"
    assert row["poster"] == "/archive/posters/p.jpg"
    assert row["created"] == datetime.fromtimestamp(NOW - 3600, tz=UTC)
    rec = by_id[recovered.run_id]
    assert rec["prompt"].startswith("(recovered by task id")
    assert rec["poster"] is None and rec["mode"] == "—"


def test_parameter_items_name_defaults_and_images(sqlite_ledger: Ledger) -> None:
    rid = seed(sqlite_ledger, mode=None, duration=10, aspect=None, negative_prompt="blur",
               image_urls=["https://x.test/a.png", "https://x.test/b.png"], watermark=False)
    items = dict(history.parameter_items(sqlite_ledger.get(rid)))
    assert items["Mode"] == "std (720p) (default)"
    assert items["Duration"] == "10 s"
    assert items["Aspect ratio"] == "16:9 (default)"
    assert items["Resolution"] == "1280×720"
    assert items["Negative prompt"] == "blur"
    assert items["Watermark"] == "off"
    assert items["First frame"] == "https://x.test/a.png" and items["Last frame"] == "https://x.test/b.png"
    recovered = sqlite_ledger.recover("task_elsewhere")
    assert dict(history.parameter_items(recovered))["Settings"].startswith("unknown")


def test_cost_text_says_not_billed_for_failures(sqlite_ledger: Ledger) -> None:
    assert history.cost_text(sqlite_ledger.get(seed(sqlite_ledger))) == "≈ $0.18 (estimate)"
    failed = sqlite_ledger.get(seed(sqlite_ledger, state="failed", error_code="content_policy",
                                    error_message="Prompt refused"))
    assert history.cost_text(failed) == "≈ $0.18 (estimate) · not billed"
    assert history.error_text(failed) == "Prompt refused (content_policy)"


def test_state_labels_cover_every_ledger_state() -> None:
    assert set(history.STATE_LABELS) == set(STATES)


# ---------------------------------------------------------------- CSV export

def test_export_csv_holds_the_filtered_runs_only(sqlite_ledger: Ledger) -> None:
    now = time.time()
    fox = seed(sqlite_ledger, "=HYPERLINK(\"http://evil\") fox", created=now - 100)
    seed(sqlite_ledger, "whale", created=now - 50)
    future = seed(sqlite_ledger, "fox from the future", created=now + 3600)
    text = history.export_csv(sqlite_ledger, history.parse_filter("fox"), now=now).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["run_id"] for r in rows] == [fox]  # filtered, and the window is frozen at the click
    assert future not in text
    assert rows[0]["prompt"].startswith("'=HYPERLINK")  # a spreadsheet must not run it
    assert "local-playground" not in text and "Bearer" not in text
    everything = list(csv.DictReader(io.StringIO(
        history.export_csv(sqlite_ledger, RunFilter(), now=now).decode("utf-8"))))
    assert len(everything) == 2
    assert history.csv_file_name(NOW) == "kling-runs-20260528-202640.csv"


def test_a_big_export_stops_at_its_cap_with_words_and_whole_rows(sqlite_ledger: Ledger) -> None:
    now = time.time()
    long_prompt = "ünïcode and a very long prompt, " * 70  # ~2,200 characters, some of them 2 bytes
    ids = [seed(sqlite_ledger, f"{i} {long_prompt}", created=now - 1000 + i) for i in range(40)]
    data = history.export_csv(sqlite_ledger, RunFilter(), now=now, max_bytes=30_000)
    assert len(data) <= 30_000 + 500  # the cap, plus the one line of words
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header, runs, note = rows[0], rows[1:-1], rows[-1]
    assert header[0] == "run_id" and 5 <= len(runs) < 40
    assert [r[0] for r in runs] == ids[::-1][:len(runs)]  # newest first, each row whole
    assert all(len(r) == len(header) for r in runs)
    assert note == [history.export_note(len(runs), 30_000)]
    assert note[0].startswith(f"Export stopped at 0.03 MB after the newest {len(runs)} matching runs: narrow")
    whole = history.export_csv(sqlite_ledger, RunFilter(), now=now)  # the default cap: everything fits
    assert len(list(csv.reader(io.StringIO(whole.decode("utf-8"))))) == 41


# ---------------------------------------------------------------- spend and stats

def test_spend_and_stats_from_the_ledger(sqlite_ledger: Ledger) -> None:
    now = time.time()
    seed(sqlite_ledger, "a", created=now - 60, est_cost=0.2)
    seed(sqlite_ledger, "b", mode="pro", duration=10, created=now - 60, est_cost=0.6)
    seed(sqlite_ledger, "c", state="failed", created=now - 60, est_cost=5.0)  # not billed
    frame = history.spend_frame(sqlite_ledger.spend_by_day(7))
    assert list(frame.columns) == ["day", "estimated USD"]
    assert len(frame) == 7
    assert frame["estimated USD"].iloc[-1] == pytest.approx(0.8)
    assert frame["estimated USD"].iloc[:-1].sum() == 0
    stats = sqlite_ledger.stats()
    assert history.stats_summary(stats) == [
        ("Runs", "3"), ("Success rate", "67%"), ("Completed / failed", "2 / 1"),
    ]
    assert history.median_rows(stats) == [
        {"mode": "pro", "duration": "10 s", "runs": 1, "median time to finish": "42 s"},
        {"mode": "std", "duration": "5 s", "runs": 1, "median time to finish": "42 s"},
    ]
    empty = history.stats_summary({"total": 0, "completed": 0, "failed": 0, "success_rate": None})
    assert ("Success rate", "—") in empty


def test_utc_offset_seconds() -> None:
    assert history.utc_offset_seconds(ZoneInfo("Asia/Kolkata"), NOW) == 5.5 * 3600
    assert history.utc_offset_seconds(UTC, NOW) == 0


# ---------------------------------------------------------------- share view

def test_parse_share_query() -> None:
    rid = Ledger.new_id()
    assert history.parse_share_query({"id": rid}) == history.ShareTarget("run", rid)
    assert history.parse_share_query({"group": [rid]}) == history.ShareTarget("group", rid)
    for bad in ("", "abc", "../../etc/passwd", "<script>x</script>", "a" * 65, rid + " x"):
        target = history.parse_share_query({"id": bad})
        assert target.kind == "invalid" and target.message == history.NOT_FOUND_MESSAGE, bad
    assert history.parse_share_query({}).message == history.NO_TARGET_MESSAGE


def test_grid_query_sort_and_labels(sqlite_ledger: Ledger) -> None:
    gid = Ledger.new_id()
    common = {"group_id": gid, "aspect": "1:1", "negative_prompt": "blur",
              "image_urls": ["https://x.test/first.png"], "watermark": True}
    pro10 = seed(sqlite_ledger, "fox", mode="pro", duration=10, created=NOW - 5, label="pro", **common)
    std5 = seed(sqlite_ledger, "fox", mode="std", duration=5, created=NOW - 4, label="std", **common)
    std5b = seed(sqlite_ledger, "wolf", mode="std", duration=5, created=NOW - 3, label="variant 2", **common)
    failed = seed(sqlite_ledger, "fox", mode="pro", duration=5, created=NOW - 2, state="failed", **common)
    runs = sqlite_ledger.group(gid)
    assert [r.run_id for r in history.sort_grid(runs)] == [std5, failed, pro10, std5b]
    assert history.grid_query(runs) == {
        "prompt": "fox", "prompt2": "wolf", "modes": "std,pro", "durations": "5,10", "aspect_ratio": "1:1",
        "negative_prompt": "blur", "first_frame": "https://x.test/first.png", "watermark": "true",
    }
    labels = {r.run_id: history.grid_cell_label(r) for r in runs}
    assert labels[std5] == "std 720p · 5 s · 1:1"
    assert labels[pro10] == "pro 1080p · 10 s · 1:1"
    assert labels[std5b] == "variant 2 · std 720p · 5 s · 1:1"
    total, billed = history.group_cost(runs)
    assert total == pytest.approx(4 * 0.184) and billed == pytest.approx(3 * 0.184)
    assert history.grid_query([]) == {}
    wide = seed(sqlite_ledger, "fox", mode="std", duration=5, created=NOW - 1, group_id=gid, aspect="16:9")
    query = history.grid_query([*runs, sqlite_ledger.get(wide)])
    assert query["aspects"] == "16:9,1:1" and "aspect_ratio" not in query


def test_grid_query_is_what_the_compare_page_reads(sqlite_ledger: Ledger) -> None:
    from lib import compare

    gid = Ledger.new_id()
    for mode in ("std", "pro"):
        for duration in (5, 10):
            seed(sqlite_ledger, "heron at dawn", mode=mode, duration=duration, aspect="9:16", group_id=gid,
                 negative_prompt="fog", image_urls=["https://x.test/first.png"])
    spec = compare.spec_from_query(history.grid_query(sqlite_ledger.group(gid)))
    assert spec == compare.GridSpec(prompts=("heron at dawn",), modes=("std", "pro"), durations=(5, 10),
                                    aspects=("9:16",), image_urls=("https://x.test/first.png",),
                                    negative_prompt="fog")


def test_compact_rows_put_state_mode_duration_and_prompt_in_one_cell() -> None:
    rows = [{"state": "completed", "mode": "pro", "duration": "10 s", "prompt": "A fox\nin  snow",
             "run_id": "r1", "poster": None}]
    assert history.compact_rows(rows) == [{"run": "completed · pro · 10 s · A fox in snow", "run_id": "r1"}]
