"""Every run ends: a deadline after submit, slow checks for a late finish, and tasks the gateway forgot.

Real parts: the worker talks HTTP to the embedded local gateway (its clock speed keeps a task in progress
for as long as a test needs; its fault queue answers 404), the ledger is a real SQLite file (PostgreSQL
for the ledger-level counter test), the archive a real folder. Deadlines are seconds long here through
the same Worker arguments the setting feeds.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lib import ledger as L
from lib import playground
from lib.archive import Archive
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.schedule import late_look
from lib.services import worker_client
from lib.worker import NOT_FOUND_LIMIT, Worker

REQ = VideoRequest(prompt="a kite that never lands", mode="std", duration=5, aspect_ratio="1:1")
STUCK = 0.01  # gateway speed: a std 5 s task takes 1,500 s, i.e. it stays in progress for every test here


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def make_worker(local_gateway: Any, sqlite_ledger: Ledger, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(**kw: Any) -> Worker:
        kw.setdefault("first_look", 0.2)
        kw.setdefault("idle", 0.1)
        trusted = SafeFetcher(FetchPolicy.for_gateway(local_gateway.url))
        archive = Archive(tmp_path / "archive", fetcher=trusted)
        worker = Worker(sqlite_ledger, worker_client(local_gateway.url, local_gateway.key, RateLimiter()),
                        archive, **kw)
        made.append(worker)
        worker.start()
        return worker

    yield make
    for worker in made:
        worker.stop(timeout=10)


def new_run(led: Ledger) -> str:
    run_id = Ledger.new_id()
    led.create_run(run_id, REQ, 0.18)
    return run_id


def get(led: Ledger, run_id: str) -> L.Run:
    run = led.get(run_id)
    assert run is not None
    return run


def queries(gw: Any, task_id: str | None) -> list[dict]:
    return [e for e in gw.requests("query") if task_id and e.get("task_id") == task_id]


# --------------------------------------------------------------------------- the deadline


def test_a_run_past_its_deadline_is_timed_out_in_words_and_no_longer_in_flight(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker]
) -> None:
    local_gateway.control("config", speed=STUCK)
    led = sqlite_ledger
    make_worker(deadline=1.5, late_every=0.5, late_window=600)
    run_id = new_run(led)
    wait_for(lambda: get(led, run_id).state == L.QUEUED, timeout=15)  # sent; queued for minutes at this speed
    assert led.in_flight() == 1
    run = wait_for(lambda: (r := get(led, run_id)).state == L.TIMED_OUT and r, timeout=15)
    assert run.submitted_at is not None and time.time() - run.submitted_at >= 1.5
    words = playground.explain(run)
    assert words.startswith("Timed out: the gateway had not finished this run 1.5 s after it was sent")
    assert "sent nothing again" in words and "may still have been billed" in words
    assert "checks it every 0.5 s until 10 minutes after sending" in words
    # No longer in flight: the count, the live fragment's states and the cards' liveness all drop it.
    assert led.in_flight() == 0 and run_id not in led.states()
    assert run.billed and led.spend() == pytest.approx(0.18)
    # Slow checks go on at their pace; nothing is sent again and the run stays timed out meanwhile.
    seen = len(queries(local_gateway, run.task_id))
    time.sleep(2.0)
    later = len(queries(local_gateway, run.task_id)) - seen
    assert 2 <= later <= 6, later
    assert get(led, run_id).state == L.TIMED_OUT and get(led, run_id).next_poll_at is not None
    assert len(local_gateway.requests("submit")) == 1


def test_a_late_finish_after_the_deadline_is_still_archived(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    local_gateway.control("config", speed=3.0)  # the task takes ~5 s: well past a 1 s deadline
    led = sqlite_ledger
    make_worker(deadline=1.0, late_every=1.0, late_window=600)
    run_id = new_run(led)
    wait_for(lambda: get(led, run_id).state == L.TIMED_OUT, timeout=15)
    run = wait_for(lambda: (r := get(led, run_id)).video_path and r, timeout=60)
    assert run.state == L.COMPLETED and run.error_code is None and run.error_message is None
    assert run.progress == 100 and run.completed_at is not None
    assert (tmp_path / "archive" / run.video_path).stat().st_size > 1000
    assert len(local_gateway.requests("submit")) == 1


def test_slow_checks_end_after_their_window_and_say_so(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker]
) -> None:
    local_gateway.control("config", speed=STUCK)
    led = sqlite_ledger
    make_worker(deadline=0.5, late_every=0.4, late_window=2.5)
    run_id = new_run(led)
    run = wait_for(lambda: (r := get(led, run_id)).state == L.TIMED_OUT and r.next_poll_at is None and r,
                   timeout=20)
    assert run.submitted_at is not None and time.time() >= run.submitted_at + 2.5
    assert "stopped checking" in playground.explain(run) and "Re-run it" in playground.explain(run)
    seen = len(queries(local_gateway, run.task_id))
    time.sleep(1.5)
    assert len(queries(local_gateway, run.task_id)) == seen  # over: nobody looks at it again
    assert led.claim_due(time.time() + 10**6, "anyone") == []


def test_a_run_left_in_flight_past_its_deadline_times_out_at_its_first_look_after_a_restart(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker]
) -> None:
    """An app that was down for hours: its old in-flight runs end instead of ticking forever."""
    local_gateway.control("config", speed=STUCK)
    led = sqlite_ledger
    task = worker_client(local_gateway.url, local_gateway.key, RateLimiter()).submit(REQ)
    hours_ago = time.time() - 3 * 3600
    row = L.run_row("old-run-0001", REQ, 0.18, now=hours_ago, state=L.IN_PROGRESS, task_id=task.id)
    row.update(submitted_at=hours_ago, next_poll_at=time.time(), polls=40, progress=37)
    L.bulk_insert(led, [row])
    make_worker()  # the defaults: a 30-minute deadline, slow checks every 10 minutes for 24 hours
    run = wait_for(lambda: (r := get(led, "old-run-0001")).state == L.TIMED_OUT and r, timeout=15)
    assert "30 minutes after it was sent" in run.error_message and "every 10 minutes until 24 hours" in \
        run.error_message
    assert run.next_poll_at == pytest.approx(time.time() + 600, abs=30)
    assert len(queries(local_gateway, task.id)) == 1 and led.in_flight() == 0


# --------------------------------------------------------------------------- 404s


def test_a_task_answered_404_three_times_in_a_row_ends_as_no_longer_known(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker]
) -> None:
    local_gateway.control("config", speed=STUCK)
    local_gateway.control("faults", endpoint="query", mode="status", status=404, count=NOT_FOUND_LIMIT)
    led = sqlite_ledger
    make_worker()
    run_id = new_run(led)
    run = wait_for(lambda: (r := get(led, run_id)).state == L.UNKNOWN and r, timeout=30)
    assert run.error_code == L.TASK_GONE_CODE and run.not_found == NOT_FOUND_LIMIT
    words = playground.explain(run)
    assert words.startswith(f"The gateway no longer knows this task ({run.task_id}): it answered HTTP 404 "
                            "to 3 status checks in a row")
    assert "may have been billed" in words and "recover" not in words.lower()
    assert run.billed and led.in_flight() == 0 and run.next_poll_at is None
    asked = queries(local_gateway, run.task_id)
    assert [e["status"] for e in asked] == [404, 404, 404]
    time.sleep(1.5)
    assert len(queries(local_gateway, run.task_id)) == 3  # ended: not asked again
    assert len(local_gateway.requests("submit")) == 1


def test_fewer_404s_than_the_limit_are_retried_and_the_run_finishes(
    local_gateway: Any, sqlite_ledger: Ledger, make_worker: Callable[..., Worker]
) -> None:
    local_gateway.control("faults", endpoint="query", mode="status", status=404, count=NOT_FOUND_LIMIT - 1)
    led = sqlite_ledger
    make_worker()
    run_id = new_run(led)
    run = wait_for(lambda: (r := get(led, run_id)).video_path and r, timeout=60)
    assert run.state == L.COMPLETED and run.not_found == 0  # the readable answer broke the run of 404s
    statuses = [e["status"] for e in queries(local_gateway, run.task_id)]
    assert statuses[:2] == [404, 404] and 200 in statuses


def test_the_404_count_is_kept_in_the_ledger_and_reset_by_a_readable_answer(ledger_url: str) -> None:
    led = Ledger(ledger_url)
    try:
        run_id = new_run(led)
        assert led.claim_for_submit(run_id)
        led.mark_submitted(run_id, Task(id="task_gone_1", status="queued", progress=0), time.time())
        assert [led.note_not_found(run_id) for _ in range(2)] == [1, 2]
    finally:
        led.close()
    again = Ledger(ledger_url)  # another process, or the app after a restart, counts on
    try:
        assert again.get(run_id).not_found == 2 and again.note_not_found(run_id) == 3
        again.apply_task(run_id, Task(id="task_gone_1", status="in_progress", progress=10), time.time() + 5)
        assert again.get(run_id).not_found == 0 and again.note_not_found(run_id) == 1
        with pytest.raises(L.LedgerError):
            again.note_not_found("no-such-run")
    finally:
        again.close()


# --------------------------------------------------------------------------- ledger rules and setting


def test_a_timed_out_run_leaves_that_state_only_by_finishing(ledger: Ledger) -> None:
    run_id = new_run(ledger)
    assert ledger.claim_for_submit(run_id)
    ledger.mark_submitted(run_id, Task(id="task_late_1", status="queued", progress=0), time.time())
    assert ledger.mark_timed_out(run_id, "Timed out: …", time.time() + 600)
    ledger.apply_task(run_id, Task(id="task_late_1", status="in_progress", progress=50), time.time())
    run = ledger.get(run_id)
    assert run.state == L.TIMED_OUT and run.progress == 50 and run.error_code == L.TIMED_OUT_CODE
    assert ledger.in_flight() == 0 and ledger.stats()["by_state"][L.TIMED_OUT] == 1
    assert ledger.count_runs(L.RunFilter(states=(L.TIMED_OUT,))) == 1
    ledger.set_note(run_id, "a worker note must not replace the time-out words")
    assert ledger.get(run_id).error_message == "Timed out: …"
    assert ledger.apply_task(run_id, Task(id="task_late_1", status="completed", progress=100,
                                          video_url="https://cdn.example/v.mp4"), None)
    run = ledger.get(run_id)
    assert run.state == L.COMPLETED and run.error_code is None and run.next_poll_at is not None
    assert not ledger.mark_timed_out(run_id, "too late", None)  # a finished run is never timed out


def test_late_checks_are_spaced_and_end_with_the_window() -> None:
    assert late_look(1000.0, 1000.0 + 1800) == 1000.0 + 1800 + 600
    assert late_look(1000.0, 1000.0 + 86000, window=86400) == 1000.0 + 86400  # the last check at the end
    assert late_look(1000.0, 1000.0 + 86400, window=86400) is None


@pytest.mark.parametrize(("raw", "seconds"),
                         [(None, 1800.0), ("45", 2700.0), ("0.05", 3.0), ("1440", 86400.0)])
def test_the_run_deadline_setting_is_in_minutes(raw: str | None, seconds: float) -> None:
    env = {} if raw is None else {"PLAYGROUND_RUN_DEADLINE": raw}
    assert load_settings(env=env).run_deadline == pytest.approx(seconds)


@pytest.mark.parametrize(("raw", "words"), [
    ("abc", "must be a positive number (minutes after submit"),
    ("0", "must be a positive number"),
    ("-5", "must be a positive number"),
    ("nan", "must be a positive number"),
    ("²", "must be a positive number"),
    ("1441", "must be at most 1440 minutes (24 hours"),
])
def test_a_bad_run_deadline_is_refused_in_words(raw: str, words: str) -> None:
    with pytest.raises(ValueError, match="PLAYGROUND_RUN_DEADLINE") as caught:
        load_settings(env={"PLAYGROUND_RUN_DEADLINE": raw})
    assert words in str(caught.value) and repr(raw) in str(caught.value)
