"""A waiting run's estimate, measured from the ledger's finished runs of the same kind (issue 14 item 8)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from lib import queue_estimate
from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row

NOW = 1_780_000_000.0


def finished(ledger: Ledger, mode: str, duration: int, send: float, finish: float, at: float) -> None:
    row = run_row(Ledger.new_id(), VideoRequest("a fox", mode=mode, duration=duration), 0.18, now=at,
                  state="completed")
    row.update(submitted_at=at + send, completed_at=at + send + finish, next_poll_at=None)
    bulk_insert(ledger, [row])


def test_median_of_the_same_mode_and_duration_only(ledger: Ledger) -> None:
    """Real SQLite and PostgreSQL: other kinds, failed and unfinished runs do not count."""
    for i, took in enumerate((30.0, 40.0, 90.0)):
        finished(ledger, "std", 5, 1.0, took, NOW - 1000 + i)
    finished(ledger, "pro", 5, 1.0, 300.0, NOW - 900)          # another mode
    finished(ledger, "std", 10, 1.0, 500.0, NOW - 800)         # another duration
    bulk_insert(ledger, [run_row(Ledger.new_id(), VideoRequest("x"), 0.18, now=NOW, state="queued")])
    typical = queue_estimate.measure(ledger.finish_times("std", 5))
    assert typical == queue_estimate.Typical(send_s=1.0, finish_s=40.0, runs=3)
    assert queue_estimate.measure(ledger.finish_times("pro", 10)) is None
    # bounded: the latest `limit` finished runs only
    assert len(ledger.finish_times("std", 5, limit=2)) == 2


@pytest.mark.parametrize(("seconds", "text"), [
    (3.2, "~3 s"), (0.2, "~1 s"), (41, "~40 s"), (43, "~45 s"), (59, "~60 s"), (95, "~1 min 40 s"),
    (120, "~2 min"), (3600, "~60 min"),
])
def test_about_rounds_like_people_speak(seconds: float, text: str) -> None:
    assert queue_estimate.about(seconds) == text


def test_words_say_the_estimate_its_basis_and_the_wait() -> None:
    typical = queue_estimate.Typical(send_s=1.0, finish_s=39.0, runs=12)
    assert queue_estimate.words(typical, "pro", 5, 6.0) == (
        "usually ~40 s (median of 12 finished pro 5 s runs) · waiting 6 s")
    assert queue_estimate.words(typical, "pro", 5, 75.0).endswith("waiting 1 min 15 s · slower than usual")
    one = queue_estimate.Typical(0.5, 20.0, 1)
    assert "median of 1 finished std 10 s run)" in queue_estimate.words(one, "std", 10, 0)
    # nothing measured: said, not invented
    assert queue_estimate.words(None, "std", 15, 12.0) == (
        "No finished std 15 s run yet to estimate from · waiting 12 s")


def test_for_run_reads_the_ledger_once_per_ttl(sqlite_url: str) -> None:
    ledger = Ledger(sqlite_url)
    try:
        finished(ledger, "std", 5, 1.0, 40.0, NOW - 500)
        calls = []
        real = ledger.finish_times

        def counting(*args, **kwargs):
            calls.append(args)
            return real(*args, **kwargs)

        ledger.finish_times = counting  # type: ignore[method-assign]
        run = SimpleNamespace(request=VideoRequest("a fox"), created_at=NOW - 10, submitted_at=NOW - 9)
        first = queue_estimate.for_run(ledger, run, now=NOW)
        assert first == "usually ~40 s (median of 1 finished std 5 s run) · waiting 10 s"
        queue_estimate.for_run(ledger, run, now=NOW + 1)
        assert len(calls) == 1  # a card ticking every second does not query every second
    finally:
        ledger.close()
