"""The run ledger on a real SQLite file and a real PostgreSQL: rows, transitions, filters, money, scale."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import time

import pytest
import sqlalchemy as sa

from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import (
    COMPLETED,
    DRAFT,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    STALE_SUBMIT_CODE,
    SUBMITTING,
    UNKNOWN,
    Ledger,
    LedgerError,
    RunFilter,
    bulk_insert,
    run_row,
)

REQ = VideoRequest(prompt="A red fox runs through snow", mode="std", duration=5, aspect_ratio="16:9")


def task(status: str, progress: int = 0, **kw: object) -> Task:
    return Task(id=str(kw.pop("id", "video_1")), status=status, progress=progress, **kw)  # type: ignore[arg-type]


def submitted(ledger: Ledger, run_id: str, task_id: str, *, req: VideoRequest = REQ,
              cost: float = 0.2) -> None:
    """A run taken through create -> claim -> submitted, as the worker does it."""
    ledger.create_run(run_id, req, cost)
    assert ledger.claim_for_submit(run_id, "w")
    ledger.mark_submitted(run_id, task("queued", id=task_id), next_poll_at=time.time() + 5)


# ------------------------------------------------------------------ creating and reading


def test_create_run_is_idempotent_and_round_trips_the_request(ledger: Ledger) -> None:
    req = VideoRequest(prompt="Waves", mode="pro", duration=10, image_urls=("https://x/a.png",),
                       negative_prompt="Blurry", watermark=False)
    run, created = ledger.create_run("r1", req, 0.625, group_id="g1", label="pro 10 s")
    assert created and run.state == DRAFT and run.progress == 0
    assert run.request == req
    assert (run.mode, run.duration, run.aspect_ratio) == ("pro", 10, "16:9")  # defaults applied to columns
    assert run.est_cost == pytest.approx(0.625) and run.group_id == "g1" and run.label == "pro 10 s"
    assert not run.billed  # a draft has cost nothing yet

    again, created_again = ledger.create_run("r1", REQ.replace(prompt="something else"), 9.0)
    assert not created_again
    assert again.request == req and again.est_cost == pytest.approx(0.625)
    assert ledger.count_runs() == 1
    assert ledger.get("missing") is None


def test_request_none_fields_survive_as_not_sent(ledger: Ledger) -> None:
    req = VideoRequest(prompt="Only a prompt")
    run, _ = ledger.create_run("r", req, 0.18)
    assert run.request == req and run.request.mode is None
    assert (run.mode, run.duration, run.aspect_ratio) == ("std", 5, "16:9")


def test_get_many_reads_the_runs_that_exist_in_one_call(ledger: Ledger) -> None:
    for rid in ("gm-1", "gm-2", "gm-3"):
        ledger.create_run(rid, REQ, 0.2)
    got = ledger.get_many(["gm-3", "gm-1", "gm-1", "no-such-run"])
    assert sorted(r.run_id for r in got) == ["gm-1", "gm-3"]
    assert all(r.request == REQ for r in got)
    assert ledger.get_many([]) == []


def test_group_tree_reads_a_group_and_its_children_in_one_query(ledger: Ledger) -> None:
    ledger.create_run("gt-a", REQ, 0.2, group_id="gt-g", label="std")
    ledger.create_run("gt-b", REQ, 0.3, group_id="gt-g", label="pro")
    ledger.create_run("gt-a-pro", REQ, 0.3, parent_id="gt-a", source="promote")  # outside the group
    ledger.create_run("gt-other", REQ, 0.2, group_id="gt-h")
    ledger.create_run("gt-other-child", REQ, 0.2, parent_id="gt-other", source="promote")
    statements: list[str] = []
    def seen(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):
            statements.append(str(args[2]))

    sa.event.listen(ledger.engine, "before_cursor_execute", seen)
    got = ledger.group_tree("gt-g")
    assert sorted(r.run_id for r in got) == ["gt-a", "gt-a-pro", "gt-b"]
    assert len(statements) == 1, statements
    assert ledger.group_tree("no-such-group") == []


def test_states_lists_runs_in_flight_plus_the_named_ones(ledger: Ledger) -> None:
    for rid in ("st-1", "st-2", "st-3"):
        ledger.create_run(rid, REQ, 0.2)
    ledger.mark_submit_failed("st-3", "bad_request", "refused")
    assert ledger.states() == {"st-1": "draft", "st-2": "draft"}
    assert ledger.states(["st-3", "gone"]) == {"st-1": "draft", "st-2": "draft", "st-3": "failed"}
    assert len(ledger.states(active_limit=1)) == 1


def test_new_ids_are_unguessable_and_distinct() -> None:
    ids = {Ledger.new_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(len(i) >= 21 for i in ids)
    # 1 in 64 random ids would start with '-', which the CSV export guards as a formula
    assert not any(i.startswith("-") for i in ids)


def test_reopening_the_ledger_keeps_every_run(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    submitted(first, "r1", "t1")
    first.close()
    second = Ledger(ledger_url)  # a restarted server: tables exist already, nothing is lost
    try:
        run = second.get("r1")
        assert run is not None and run.state == QUEUED and run.task_id == "t1"
        assert second.get_by_task("t1") == run
    finally:
        second.close()


def test_sqlite_file_is_wal_with_parent_dirs_created(tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.db"
    led = Ledger(f"sqlite:///{path}")
    led.create_run("r", REQ, 0.1)
    led.close()
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_runs_created", "ix_runs_state_due", "ix_runs_group", "ix_runs_parent", "ux_runs_task_id"} \
        <= names


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(LedgerError, match="file"):
        Ledger("sqlite://")


# ------------------------------------------------------------------ submit path


def test_submit_path_transitions(ledger: Ledger) -> None:
    ledger.create_run("r", REQ, 0.18)
    assert ledger.claim_for_submit("r", "w1")
    assert not ledger.claim_for_submit("r", "w2")  # already on its way: never a second submit
    run = ledger.get("r")
    assert run.state == SUBMITTING and run.billed and run.lease_owner == "w1"

    t0 = time.time()
    ledger.mark_submitted("r", task("queued", id="video_abc", created_at=t0 - 1), next_poll_at=t0 + 5)
    run = ledger.get("r")
    assert (run.state, run.task_id, run.next_poll_at) == (QUEUED, "video_abc", pytest.approx(t0 + 5))
    assert run.submitted_at == pytest.approx(t0, abs=2) and run.polls == 0
    assert not ledger.claim_for_submit("r")

    assert ledger.apply_task("r", task("in_progress", 40, id="video_abc"), t0 + 10) is True
    assert ledger.apply_task("r", task("in_progress", 60, id="video_abc"), t0 + 15) is False
    run = ledger.get("r")
    assert (run.state, run.progress, run.polls, run.completed_at) == (IN_PROGRESS, 60, 2, None)

    done = task("completed", 100, id="video_abc", video_url="https://cdn/v.mp4", thumbnail_url="https://cdn/t.jpg",
                expires_at=t0 + 86400, completed_at=t0 + 20)
    assert ledger.apply_task("r", done, None) is True
    run = ledger.get("r")
    assert run.state == COMPLETED and run.progress == 100 and run.completed_at is not None
    assert (run.video_url, run.thumbnail_url) == ("https://cdn/v.mp4", "https://cdn/t.jpg")
    assert run.expires_at == pytest.approx(t0 + 86400) and run.gateway_completed_at == pytest.approx(t0 + 20)
    assert run.next_poll_at is not None  # due for archiving at once
    assert run.seconds_to_finish is not None and run.seconds_to_finish >= 0

    # A late, stale poll result never moves a finished run back, and never loses the URL.
    assert ledger.apply_task("r", task("in_progress", 10, id="video_abc"), t0 + 30) is False
    assert ledger.get("r").state == COMPLETED and ledger.get("r").video_url == "https://cdn/v.mp4"

    ledger.mark_archived("r", "/data/archive/r.mp4", "/data/archive/r.jpg")
    run = ledger.get("r")
    assert run.video_path == "/data/archive/r.mp4" and run.archived_at is not None
    assert run.next_poll_at is None


def test_failed_task_keeps_the_reason_and_is_not_billed(ledger: Ledger) -> None:
    submitted(ledger, "r", "t")
    failed = task("failed", 30, id="t", error_code="content_policy", error_message="Prompt was rejected")
    assert ledger.apply_task("r", failed, time.time() + 5) is True
    run = ledger.get("r")
    assert (run.state, run.error_code, run.error_message) == (FAILED, "content_policy", "Prompt was rejected")
    assert not run.billed and run.next_poll_at is None and run.completed_at is not None


def test_submit_refused_and_submit_unknown(ledger: Ledger) -> None:
    ledger.create_run("refused", REQ, 0.18)
    ledger.claim_for_submit("refused")
    ledger.mark_submit_failed("refused", "insufficient_balance", "Top up your balance")
    run = ledger.get("refused")
    assert run.state == FAILED and not run.billed and run.task_id is None and run.next_poll_at is None

    ledger.create_run("lost", REQ, 0.18)
    ledger.claim_for_submit("lost")
    ledger.mark_unknown("lost", "The gateway did not answer in time")
    run = ledger.get("lost")
    assert run.state == UNKNOWN and run.billed and run.next_poll_at is None  # a budget must assume it cost
    assert ledger.claim_due(time.time() + 3600, "w") == []  # never re-submitted by itself

    with pytest.raises(LedgerError):
        ledger.mark_unknown("no-such-run", "x")


def test_a_slow_submit_that_was_declared_lost_still_records_its_task(ledger: Ledger) -> None:
    ledger.create_run("r", REQ, 0.18)
    ledger.claim_for_submit("r", "w", lease=10)
    assert ledger.claim_due(time.time() + 60, "other") == []  # lease ran out: marked unknown
    assert ledger.get("r").state == UNKNOWN
    ledger.mark_submitted("r", task("queued", id="late"), time.time())
    run = ledger.get("r")
    assert (run.state, run.task_id, run.error_code) == (QUEUED, "late", None)


def test_stale_submitting_becomes_unknown_not_resubmitted(ledger: Ledger) -> None:
    now = time.time()
    ledger.create_run("dead", REQ, 0.18)
    ledger.create_run("alive", REQ, 0.18)
    assert ledger.claim_for_submit("dead", "crashed-process", now=now - 300, lease=120)
    assert ledger.claim_for_submit("alive", "live-process", now=now, lease=120)
    claimed = ledger.claim_due(now, "w")
    assert claimed == []
    dead, alive = ledger.get("dead"), ledger.get("alive")
    assert dead.state == UNKNOWN and dead.error_code == STALE_SUBMIT_CODE
    assert "may or may not have reached the gateway" in dead.error_message
    assert "recover it by task id" in dead.error_message
    assert alive.state == SUBMITTING  # its process is still within its lease
    assert not ledger.claim_for_submit("dead")


def test_unclaim_submit_makes_a_never_sent_run_a_draft_again(ledger: Ledger) -> None:
    ledger.create_run("r", REQ, 0.18)
    assert not ledger.unclaim_submit("r", 0.0)  # only a submitting run can be given back
    assert ledger.claim_for_submit("r", "w")
    now = time.time()
    assert ledger.unclaim_submit("r", now + 30)  # e.g. 429 on the submit: nothing was created
    run = ledger.get("r")
    assert run.state == DRAFT and run.next_poll_at == pytest.approx(now + 30) and not run.billed
    ledger.release("r", "w", now + 30)
    assert ledger.claim_due(now + 10, "w") == []
    assert [r.run_id for r in ledger.claim_due(now + 31, "w")] == ["r"]
    assert ledger.claim_for_submit("r", "w")


def test_notes_show_on_active_runs_only_and_clear_on_completion(ledger: Ledger) -> None:
    submitted(ledger, "r", "t")
    v0 = ledger.changes()
    ledger.set_note("r", "The gateway asked us to slow down; next look in 4 s.")
    assert ledger.get("r").error_message.startswith("The gateway asked") and ledger.changes() != v0
    ledger.set_note("r", None)
    assert ledger.get("r").error_message is None
    v1 = ledger.changes()
    ledger.set_note("r", None)  # nothing to clear: no change for the live fragment
    assert ledger.changes() == v1
    ledger.set_note("r", "retrying")
    ledger.apply_task("r", task("completed", 100, id="t", video_url="https://cdn/v.mp4"), None)
    run = ledger.get("r")
    assert run.error_message is None and not run.archive_failed  # still due for archiving
    ledger.set_note("r", "Could not save the video; next try in 30 s.")  # archiving waits: a note too
    run = ledger.get("r")
    assert run.error_message.startswith("Could not save") and run.error_code is None
    assert not run.archive_failed
    assert [r.run_id for r in ledger.claim_due(time.time() + 200, "w2")] == ["r"]
    ledger.mark_archived("r", "/v.mp4", None)
    assert ledger.get("r").error_message is None
    ledger.set_note("r", "too late")
    assert ledger.get("r").error_message is None  # archived: out of the worker's hands

    submitted(ledger, "f", "tf")
    ledger.apply_task("f", task("failed", id="tf", error_message="Upstream failed"), None)
    ledger.set_note("f", None)
    ledger.set_note("f", "late note")
    assert ledger.get("f").error_message == "Upstream failed"  # a finished run keeps its reason

    submitted(ledger, "x", "tx")
    ledger.apply_task("x", task("completed", 100, id="tx"), None)
    ledger.mark_archive_error("x", "expired", "The link expired before the video was saved.")
    ledger.set_note("x", None)
    assert ledger.get("x").error_message == "The link expired before the video was saved."


def test_attach_task_recovers_an_unknown_run(ledger: Ledger) -> None:
    ledger.create_run("r", REQ, 0.18)
    ledger.claim_for_submit("r")
    ledger.mark_unknown("r", "timeout")
    ledger.attach_task("r", "video_found", next_poll_at=0.0)
    run = ledger.get("r")
    assert (run.state, run.task_id, run.error_code, run.error_message) == (QUEUED, "video_found", None, None)
    assert [r.run_id for r in ledger.claim_due(time.time(), "w")] == ["r"]

    submitted(ledger, "other", "video_other")
    with pytest.raises(LedgerError, match="already belongs"):
        ledger.attach_task("r", "video_other")


def test_recover_by_task_id_is_idempotent(ledger: Ledger) -> None:
    run = ledger.recover("  video_ext  ", REQ)
    assert run.source == "recovered" and run.state == QUEUED and run.task_id == "video_ext"
    assert run.request == REQ and run.next_poll_at is not None
    assert ledger.recover("video_ext", None).run_id == run.run_id
    assert ledger.count_runs() == 1

    bare = ledger.recover("video_bare", None)  # made by curl: parameters unknown until we hear more
    assert bare.mode is None and bare.request.prompt == ""
    # The first poll fills in when the gateway made it.
    ledger.apply_task(bare.run_id, task("in_progress", 50, id="video_bare", created_at=1000.0), None)
    assert ledger.get(bare.run_id).submitted_at == 1000.0
    with pytest.raises(LedgerError):
        ledger.recover("   ")


# ------------------------------------------------------------------ worker path (single process)


def test_claim_due_hands_out_work_and_leases_it(ledger: Ledger) -> None:
    now = time.time()
    ledger.create_run("draft", REQ, 0.1)  # to submit
    submitted(ledger, "due", "t_due")
    ledger.release("due", "w", now - 1)  # to poll
    submitted(ledger, "later", "t_later")
    ledger.release("later", "w", now + 100)  # not yet
    submitted(ledger, "done", "t_done")
    ledger.apply_task("done", task("completed", 100, id="t_done", video_url="https://cdn/v.mp4"), None)
    ledger.release("done", "w", None)  # to archive
    submitted(ledger, "archived", "t_arch")
    ledger.apply_task("archived", task("completed", 100, id="t_arch"), None)
    ledger.mark_archived("archived", "/a.mp4", None)
    ledger.release("archived", "w", now - 1)  # nothing left to do: stays out
    submitted(ledger, "bad", "t_bad")
    ledger.apply_task("bad", task("completed", 100, id="t_bad"), None)
    ledger.mark_archive_error("bad", "expired", "The video link expired before it could be saved")
    ledger.release("bad", "w", now - 1)
    assert ledger.get("bad").archive_failed and not ledger.get("archived").archive_failed

    t = time.time() + 1
    got = ledger.claim_due(t, "w1", lease=30)
    assert {r.run_id for r in got} == {"draft", "due", "done"}
    assert all(r.lease_owner == "w1" and r.lease_until == pytest.approx(t + 30) for r in got)
    assert ledger.claim_due(t, "w2") == []  # all leased
    ledger.release("due", "w2", t)  # not the owner: no effect
    assert ledger.get("due").lease_owner == "w1"
    ledger.release("due", "w1", t + 50)
    assert ledger.claim_due(t + 10, "w2") == []
    assert {r.run_id for r in ledger.claim_due(t + 31, "w2")} == {"draft", "done"}  # expired leases
    assert [r.run_id for r in ledger.claim_due(t + 60, "w3")] == ["due"]
    assert len(ledger.claim_due(t + 200, "w4", limit=2)) == 2


def test_release_without_a_time_keeps_an_active_run_due(ledger: Ledger) -> None:
    submitted(ledger, "r", "t")
    now = time.time()
    ledger.claim_due(now + 10, "w")
    ledger.release("r", "w", None)  # "no opinion": it still needs polling, so due now
    assert ledger.get("r").next_poll_at is not None
    ledger.apply_task("r", task("failed", id="t"), None)
    ledger.release("r", "w", now + 5)
    assert ledger.get("r").next_poll_at is None  # failed runs never come back


# ------------------------------------------------------------------ history


def _fill_history(ledger: Ledger) -> None:
    base = 1_700_000_000.0
    rows = []
    specs = [
        ("a", "Sunset over the OCEAN", "std", 5, DRAFT, "g1"),
        ("b", "A cat in 50% rain_drops", "pro", 10, COMPLETED, "g1"),
        ("c", "city at night", "std", 10, FAILED, None),
        ("d", "Ocean waves, slow motion", "pro", 5, COMPLETED, None),
        ("e", "Forest", "std", 15, QUEUED, None),
    ]
    for i, (rid, prompt, mode, dur, state, group) in enumerate(specs):
        row = run_row(rid, VideoRequest(prompt=prompt, mode=mode, duration=dur, negative_prompt="no text"),
                      0.1 * (i + 1), now=base + i * 3600, state=state, group_id=group)
        rows.append(row)
    bulk_insert(ledger, rows)


def test_filters_paging_and_count(ledger: Ledger) -> None:
    _fill_history(ledger)
    assert [r.run_id for r in ledger.list_runs()] == ["e", "d", "c", "b", "a"]  # newest first
    assert [r.run_id for r in ledger.list_runs(limit=2, offset=2)] == ["c", "b"]
    assert ledger.list_runs(limit=2, offset=10) == []

    def ids(**kw: object) -> list[str]:
        flt = RunFilter(**kw)  # type: ignore[arg-type]
        got = [r.run_id for r in ledger.list_runs(flt, limit=100)]
        assert ledger.count_runs(flt) == len(got)
        return got

    assert ids(text="ocean") == ["d", "a"]  # case-insensitive substring
    assert ids(text="50%") == ["b"] and ids(text="%") == ["b"] and ids(text="_") == ["b"]  # wildcards literal
    assert ids(text="NO TEXT") == ["e", "d", "c", "b", "a"]  # negative prompt is searched too
    assert ids(text="CITY") == ["c"] and ids(text="cat") == ["b"]
    assert ids(states=(COMPLETED, FAILED)) == ["d", "c", "b"]
    assert ids(modes=("pro",)) == ["d", "b"]
    assert ids(durations=(10, 15)) == ["e", "c", "b"]
    assert ids(modes=("std",), durations=(10,)) == ["c"]
    assert ids(since=1_700_000_000.0 + 3600, until=1_700_000_000.0 + 3 * 3600) == ["c", "b"]
    assert ids(group_id="g1") == ["b", "a"]
    assert ids(text="zebra") == []
    assert [r.run_id for r in ledger.group("g1")] == ["a", "b"]  # in creation order


def test_task_id_is_searchable(ledger: Ledger) -> None:
    submitted(ledger, "r1", "video_xyz")
    ledger.create_run("r2", REQ, 0.1)
    assert [r.run_id for r in ledger.list_runs(RunFilter(text="video_xyz"))] == ["r1"]


def test_children_and_in_flight(ledger: Ledger) -> None:
    submitted(ledger, "parent", "t1")
    ledger.create_run("child", REQ.replace(mode="pro"), 0.3, parent_id="parent", source="promote")
    ledger.create_run("child2", REQ, 0.2, parent_id="parent", source="rerun")
    assert [r.run_id for r in ledger.children("parent")] == ["child", "child2"]
    assert ledger.get("child").source == "promote"
    assert ledger.in_flight() == 3
    ledger.apply_task("parent", task("failed", id="t1"), None)
    assert ledger.in_flight() == 2


def test_csv_export_is_plain_values_and_formula_safe(ledger: Ledger) -> None:
    ledger.create_run("r1", VideoRequest(prompt="=HYPERLINK(\"http://evil\")", mode="pro"), 0.3125)
    submitted(ledger, "r2", "t2", req=VideoRequest(prompt="plain, with \"quotes\"\nand a newline"))
    text = ledger.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["run_id"] for r in rows] == ["r2", "r1"]
    assert rows[1]["prompt"].startswith("'=")  # a spreadsheet shows it, never evaluates it
    assert rows[0]["prompt"] == "plain, with \"quotes\"\nand a newline"
    assert rows[0]["task_id"] == "t2" and rows[1]["mode"] == "pro" and rows[1]["billed"] == "False"
    assert list(rows[0]) == list(next(ledger.csv_rows()))
    only = list(csv.DictReader(io.StringIO(ledger.to_csv(RunFilter(modes=("pro",))))))
    assert [r["run_id"] for r in only] == ["r1"]


def test_iter_runs_pages_through_everything(ledger: Ledger) -> None:
    rows = [run_row(f"r{i:03d}", REQ, 0.1, now=1000.0 + (i // 3)) for i in range(25)]  # ties on created_at
    bulk_insert(ledger, rows)
    seen = [r.run_id for r in ledger.iter_runs(batch=4)]
    assert sorted(seen) == sorted(r["run_id"] for r in rows) and len(seen) == 25
    assert seen == [r.run_id for r in ledger.list_runs(limit=100)]


# ------------------------------------------------------------------ money and numbers


def test_spend_counts_only_what_may_have_been_charged(ledger: Ledger) -> None:
    ledger.create_run("draft", REQ, 1.0)
    submitted(ledger, "queued", "t1", cost=2.0)
    submitted(ledger, "failed", "t2", cost=4.0)
    ledger.apply_task("failed", task("failed", id="t2"), None)
    ledger.create_run("refused", REQ, 8.0)
    ledger.claim_for_submit("refused")
    ledger.mark_submit_failed("refused", "bad_request", "no")
    ledger.create_run("unknown", REQ, 16.0)
    ledger.claim_for_submit("unknown")
    ledger.mark_unknown("unknown", "timeout")
    submitted(ledger, "done", "t3", cost=32.0)
    ledger.apply_task("done", task("completed", 100, id="t3"), None)

    assert ledger.spend() == pytest.approx(2 + 16 + 32)
    assert ledger.spend(include_drafts=True) == pytest.approx(1 + 2 + 16 + 32)
    assert ledger.spend(since=time.time() + 60) == 0.0


def test_spend_by_day_buckets_and_fills_gaps(ledger_url: str) -> None:
    day = 86400.0
    now = 1_700_000_000.0  # 2023-11-14 22:13 UTC
    led = Ledger(ledger_url, clock=lambda: now)
    try:
        rows = [
            run_row("today1", REQ, 0.5, now=now - 60, state=COMPLETED),
            run_row("today2", REQ, 0.25, now=now - 120, state=QUEUED),
            run_row("twodays", REQ, 1.0, now=now - 2 * day, state=COMPLETED),
            run_row("failed", REQ, 9.0, now=now - 60, state=FAILED),
            run_row("old", REQ, 9.0, now=now - 40 * day, state=COMPLETED),
        ]
        bulk_insert(led, rows)
        series = led.spend_by_day(7)
        assert len(series) == 7 and series[-1] == ("2023-11-14", 0.75)
        assert series[-3] == ("2023-11-12", 1.0)
        assert sum(v for _, v in series) == pytest.approx(1.75)
        shifted = dict(led.spend_by_day(7, utc_offset=3 * 3600))  # 01:13 local next day
        assert shifted["2023-11-15"] == pytest.approx(0.75)
    finally:
        led.close()


def test_stats_success_rate_and_median_time(ledger: Ledger) -> None:
    base = time.time() - 1000
    rows = []
    for i, secs in enumerate([10.0, 20.0, 90.0]):
        row = run_row(f"s{i}", REQ, 0.1, now=base, state=COMPLETED)
        row.update(submitted_at=base, completed_at=base + secs)
        rows.append(row)
    pro = run_row("p", REQ.replace(mode="pro", duration=10), 0.6, now=base, state=COMPLETED)
    pro.update(submitted_at=base, completed_at=base + 40)
    rows += [pro, run_row("f", REQ, 0.1, now=base, state=FAILED),
             run_row("q", REQ, 0.1, now=base, state=QUEUED)]
    bulk_insert(ledger, rows)
    st = ledger.stats()
    assert st["total"] == 6 and st["completed"] == 4 and st["failed"] == 1
    assert st["success_rate"] == pytest.approx(0.8)
    assert st["by_state"][QUEUED] == 1
    finish = {(m["mode"], m["duration"]): m for m in st["median_finish"]}
    assert finish[("std", 5)]["median_s"] == pytest.approx(20.0) and finish[("std", 5)]["runs"] == 3
    assert finish[("pro", 10)]["median_s"] == pytest.approx(40.0)


def test_stats_on_an_empty_ledger(ledger: Ledger) -> None:
    st = ledger.stats()
    assert st["success_rate"] is None and st["median_finish"] == [] and st["total"] == 0


def test_changes_counter_moves_on_every_write(ledger: Ledger) -> None:
    seen = [ledger.changes()]

    def changed() -> None:
        v = ledger.changes()
        assert v != seen[-1]
        seen.append(v)

    assert ledger.changes() == seen[0]  # reading changes nothing
    ledger.create_run("r", REQ, 0.1)
    changed()
    ledger.create_run("r", REQ, 0.1)  # the no-op repeat
    assert ledger.changes() == seen[-1]
    ledger.claim_for_submit("r")
    changed()
    ledger.mark_submitted("r", task("queued", id="t"), time.time())
    changed()
    ledger.apply_task("r", task("in_progress", 10, id="t"), time.time())
    changed()  # progress alone must refresh the live card
    ledger.apply_task("r", task("completed", 100, id="t"), None)
    changed()
    ledger.mark_archived("r", "/v.mp4", "/p.jpg")
    changed()


def test_changes_counter_counts_every_committed_change_from_many_threads(ledger_url: str) -> None:
    """Concurrent writers from two Ledgers (processes): the token moves once per change, none is lost."""
    import threading

    leds = [Ledger(ledger_url), Ledger(ledger_url)]
    try:
        for i in range(12):
            leds[0].create_run(f"r{i}", REQ, 0.1)
        start = leds[1].changes()[0]
        barrier = threading.Barrier(4)

        def writer(k: int) -> None:
            barrier.wait(timeout=30)
            for i in range(k, 12, 4):
                leds[k % 2].claim_for_submit(f"r{i}")
                leds[k % 2].set_note(f"r{i}", "working")

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert leds[0].changes()[0] == start + 24
        leds[1].claim_for_submit("r0")  # lost claim: nothing changed, token unchanged
        assert leds[0].changes()[0] == start + 24
        assert leds[0].claim_due(time.time(), "w") == []  # leases only: unchanged
        assert leds[0].changes()[0] == start + 24
    finally:
        for led in leds:
            led.close()


def test_uploads_remember_by_content_hash(ledger: Ledger) -> None:
    assert ledger.find_upload("ab" * 32) is None
    ledger.add_upload("ab" * 32, "https://gw/u/1.png", "cat.png", "/data/archive/uploads/ab.png")
    up = ledger.find_upload("ab" * 32)
    assert up["url"] == "https://gw/u/1.png" and up["filename"] == "cat.png" and up["created_at"] > 0
    ledger.add_upload("ab" * 32, "https://gw/u/2.png", "cat.png", None)  # re-uploaded: newest URL wins
    assert ledger.find_upload("ab" * 32)["url"] == "https://gw/u/2.png"


def test_params_are_stored_as_json_text(ledger: Ledger) -> None:
    ledger.create_run("r", REQ, 0.1)
    with ledger.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT params, search_text FROM runs WHERE run_id = 'r'")).one()
    assert json.loads(raw[0])["prompt"] == REQ.prompt and raw[1] == REQ.prompt.lower()


# ------------------------------------------------------------------ scale


def test_a_filtered_page_stays_fast_at_100k_runs(ledger: Ledger) -> None:
    base = 1_600_000_000.0
    modes, durations = ("std", "pro"), (5, 10, 15)
    reqs = [VideoRequest(prompt=f"scene {k} with a lighthouse" if k % 50 == 0 else f"scene {k}",
                         mode=modes[k % 2], duration=durations[k % 3]) for k in range(600)]
    states = (COMPLETED, COMPLETED, COMPLETED, FAILED, QUEUED)
    rows = [run_row(f"run{i:06d}", reqs[i % 600], 0.18, now=base + i, state=states[i % 5])
            for i in range(100_000)]
    for row in rows:  # like a real history: finished runs are archived and need no worker
        if row["state"] == COMPLETED:
            row.update(video_path=f"/archive/{row['run_id']}.mp4", next_poll_at=None)
    before = ledger.changes()
    t0 = time.perf_counter()
    bulk_insert(ledger, rows)
    insert_s = time.perf_counter() - t0
    assert ledger.count_runs() == 100_000

    flt = RunFilter(text="lighthouse", states=(COMPLETED,), modes=("std",))
    t0 = time.perf_counter()
    page = ledger.list_runs(flt, limit=50, offset=50)
    total = ledger.count_runs(flt)
    newest = ledger.list_runs(limit=50, offset=0)
    version = ledger.changes()
    due = ledger.claim_due(base + 200_000, "w", limit=20)
    query_s = time.perf_counter() - t0

    assert len(page) == 50 and total > 100
    assert all("lighthouse" in r.params["prompt"] and r.mode == "std" and r.state == COMPLETED for r in page)
    assert [r.created_at for r in page] == sorted((r.created_at for r in page), reverse=True)
    assert newest[0].run_id == "run099999" and version != before
    assert len(due) == 20
    print(f"\n[{ledger.dialect}] 100k insert {insert_s:.2f}s; page+count+newest+changes+claim {query_s:.3f}s")
    assert query_s < 2.0
