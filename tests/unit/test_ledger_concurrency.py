"""The ledger's promises under concurrency, on SQLite and PostgreSQL: one submit per run, one worker per run.

Each "process" is its own Ledger (own Engine and connection pool) on the same database, and threads start
together on a barrier so the race is real.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from lib.contract import VideoRequest
from lib.gateway import Task
from lib.ledger import QUEUED, SUBMITTING, Ledger, bulk_insert, run_row

REQ = VideoRequest(prompt="A paper boat on a river", mode="std", duration=5)


def race(n: int, fn: Callable[[int], Any], timeout: float = 60) -> list[Any]:
    """Run fn(i) in n threads released at the same instant; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]
    return results


def test_eight_threads_claiming_one_run_exactly_one_wins(ledger: Ledger) -> None:
    for attempt in range(5):  # repeat: a lucky interleaving must not hide a broken claim
        run_id = f"r{attempt}"
        ledger.create_run(run_id, REQ, 0.18)
        wins = race(8, lambda i, rid=run_id: ledger.claim_for_submit(rid, f"t{i}"))
        assert wins.count(True) == 1 and wins.count(False) == 7
        assert ledger.get(run_id).state == SUBMITTING


def test_eight_threads_on_two_engines_claiming_one_run(ledger_url: str) -> None:
    a, b = Ledger(ledger_url), Ledger(ledger_url)
    try:
        a.create_run("r", REQ, 0.18)
        wins = race(8, lambda i: (a if i % 2 else b).claim_for_submit("r", f"p{i % 2}"))
        assert wins.count(True) == 1
    finally:
        a.close()
        b.close()


def test_concurrent_create_of_one_run_id_makes_one_row(ledger: Ledger) -> None:
    results = race(8, lambda i: ledger.create_run("same", REQ.replace(prompt=f"take {i}"), 0.18))
    assert sum(created for _, created in results) == 1
    assert len({run.request.prompt for run, _ in results}) == 1  # everyone sees the one stored row
    assert ledger.count_runs() == 1


def test_concurrent_recover_of_one_task_makes_one_run(ledger: Ledger) -> None:
    runs = race(6, lambda i: ledger.recover("video_shared", None))
    assert len({r.run_id for r in runs}) == 1 and ledger.count_runs() == 1


def _fifty_due_runs(ledger: Ledger, now: float) -> list[str]:
    rows = []
    for i in range(50):
        row = run_row(f"run{i:02d}", REQ, 0.18, now=now - 100 + i, state=QUEUED, task_id=f"task{i:02d}")
        row["next_poll_at"] = now - 50 + i * 0.1
        rows.append(row)
    bulk_insert(ledger, rows)
    return [r["run_id"] for r in rows]


@pytest.mark.timeout(120)
def test_two_owners_claim_fifty_runs_each_exactly_once_per_lease(ledger_url: str) -> None:
    """Two worker processes sharing one database never hold the same run in one lease period."""
    workers = [Ledger(ledger_url), Ledger(ledger_url)]
    try:
        now = time.time()
        ids = _fifty_due_runs(workers[0], now)

        def drain(i: int, at: float) -> list[str]:
            got: list[str] = []
            for _ in range(200):  # bounded: 50 runs, at most 3 per claim
                batch = workers[i].claim_due(at, f"owner{i}", limit=3, lease=60)
                if not batch:
                    return got
                assert all(r.lease_owner == f"owner{i}" for r in batch)
                got += [r.run_id for r in batch]
            raise AssertionError("claim_due never ran dry")

        for period, at in enumerate((now, now + 61, now + 122)):  # each lease period hands everything out
            claimed = race(2, lambda i, at=at: drain(i, at))
            counts = Counter(claimed[0] + claimed[1])
            assert sorted(counts) == ids, f"period {period}: some run never claimed"
            assert set(counts.values()) == {1}, f"period {period}: a run went to both owners"
            leased = {r.lease_owner for r in workers[0].list_runs(limit=100)}
            assert leased <= {"owner0", "owner1"}
    finally:
        for w in workers:
            w.close()


@pytest.mark.timeout(120)
def test_released_runs_go_to_one_owner_while_others_keep_working(ledger_url: str) -> None:
    """Claims interleaved with releases and polls (what two live workers do) never double-hand a run."""
    workers = [Ledger(ledger_url), Ledger(ledger_url)]
    try:
        now = time.time()
        ids = _fifty_due_runs(workers[0], now)
        holding: dict[str, str] = {}
        lock = threading.Lock()
        doubles: list[str] = []
        handled = Counter()

        def work(i: int) -> None:
            led, owner = workers[i], f"owner{i}"
            for _ in range(40):
                for run in led.claim_due(now, owner, limit=4, lease=60):
                    with lock:
                        if run.run_id in holding:
                            doubles.append(run.run_id)
                        holding[run.run_id] = owner
                        handled[run.run_id] += 1
                    led.apply_task(run.run_id, Task(id=run.task_id, status="in_progress", progress=10), None)
                    with lock:
                        del holding[run.run_id]
                    led.release(run.run_id, owner, now + 1000)  # next look much later: done for now

        race(2, work)
        assert doubles == []
        assert sorted(handled) == ids and set(handled.values()) == {1}
        assert all(r.polls == 1 and r.lease_owner is None for r in workers[0].list_runs(limit=100))
    finally:
        for w in workers:
            w.close()


def test_many_threads_writing_and_reading_at_once(ledger: Ledger) -> None:
    """Pages reading while workers write (SQLite WAL + busy timeout): no 'database is locked'."""
    for i in range(40):
        ledger.create_run(f"r{i}", REQ, 0.1)

    def job(i: int) -> int:
        done = 0
        for k in range(10):
            rid = f"r{(i * 10 + k) % 40}"
            if i % 2:
                ledger.claim_for_submit(rid)
                ledger.apply_task(rid, Task(id=f"t{rid}", status="in_progress", progress=k), None)
            else:
                ledger.list_runs(limit=20)
                ledger.changes()
                ledger.count_runs()
            done += 1
        return done

    assert sum(race(8, job)) == 80
