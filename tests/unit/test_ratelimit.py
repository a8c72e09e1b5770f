"""RateLimiter: the sliding window and pauses on a fake clock, plus real threads on the real clock."""
from __future__ import annotations

import threading
import time

import pytest

from lib.ratelimit import DEFAULT_LIMITS, RateLimiter


class FakeClock:
    """A clock that only moves when someone sleeps: makes waits exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds


def fake_limiter(limits: dict[str, tuple[int, float]] | None = None) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(limits, clock=clock, sleep=clock.sleep), clock


def max_in_window(stamps: list[float], window: float) -> int:
    """Largest number of stamps inside any half-open interval [t, t + window)."""
    stamps = sorted(stamps)
    best = 0
    for i, start in enumerate(stamps):
        best = max(best, sum(1 for t in stamps[i:] if t < start + window))
    return best


def test_defaults_match_the_documented_limits_with_a_submit_margin() -> None:
    assert DEFAULT_LIMITS == {"submit": (5, 1.1), "query": (50, 1.0)}
    assert RateLimiter().limits == DEFAULT_LIMITS


def test_five_submits_go_at_once_and_the_sixth_waits_for_the_window() -> None:
    limiter, clock = fake_limiter()
    start = clock.now
    times = []
    for _ in range(6):
        assert limiter.acquire("submit")
        times.append(clock.now - start)
    assert times[:5] == [0.0] * 5
    assert times[5] == pytest.approx(1.1)


def test_no_window_ever_holds_more_than_the_limit() -> None:
    limiter, clock = fake_limiter({"submit": (5, 1.1)})
    stamps = []
    for i in range(40):
        if i % 7 == 3:
            clock.sleep(0.37)  # irregular gaps between callers
        limiter.acquire("submit")
        stamps.append(clock.now)
    assert max_in_window(stamps, 1.1) == 5
    # and it is not over-strict: 40 calls fit in about 40 / 5 windows
    assert stamps[-1] - stamps[0] < 8 * 1.1 + 3 * 0.37


def test_query_bucket_is_independent_of_submit() -> None:
    limiter, clock = fake_limiter()
    for _ in range(5):
        limiter.acquire("submit")
    start = clock.now
    for _ in range(50):
        assert limiter.acquire("query")
    assert clock.now == start  # 50 queries in the same instant, despite a full submit window
    limiter.acquire("query")
    assert clock.now - start == pytest.approx(1.0)


def test_acquire_times_out_with_false_and_records_nothing() -> None:
    limiter, clock = fake_limiter({"submit": (1, 2.0)})
    start = clock.now
    assert limiter.acquire("submit")
    assert limiter.acquire("submit", timeout=0.5) is False
    assert clock.now - start == pytest.approx(0.5)  # waited out its timeout, no longer
    assert limiter.acquire("submit")  # the failed attempt took no slot: this one goes at 2.0
    assert clock.now - start == pytest.approx(2.0)


def test_zero_timeout_does_not_sleep() -> None:
    limiter, clock = fake_limiter({"submit": (1, 1.0)})
    limiter.acquire("submit")
    assert limiter.acquire("submit", timeout=0) is False
    assert clock.slept == []


def test_timeout_long_enough_succeeds() -> None:
    limiter, clock = fake_limiter({"submit": (1, 1.0)})
    start = clock.now
    limiter.acquire("submit")
    assert limiter.acquire("submit", timeout=1.5) is True
    assert clock.now - start == pytest.approx(1.0)


def test_pause_of_one_bucket_leaves_the_other_alone() -> None:
    limiter, clock = fake_limiter()
    start = clock.now
    limiter.pause(3.0, "query")
    assert limiter.paused_for("query") == pytest.approx(3.0)
    assert limiter.paused_for("submit") == 0.0
    assert limiter.acquire("submit")
    assert clock.now == start
    assert limiter.acquire("query")
    assert clock.now - start == pytest.approx(3.0)


def test_pause_of_all_buckets_includes_unlisted_ones() -> None:
    limiter, clock = fake_limiter()
    start = clock.now
    limiter.pause(2.0)
    for bucket in ("submit", "query", "upload"):
        assert limiter.acquire(bucket)
        assert clock.now - start == pytest.approx(2.0)


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    limiter, clock = fake_limiter()
    start = clock.now
    limiter.pause(5.0, "query")
    limiter.pause(1.0, "query")
    limiter.pause(0.5)
    limiter.pause(-3)
    limiter.acquire("query")
    assert clock.now - start == pytest.approx(5.0)


def test_paused_bucket_times_out() -> None:
    limiter, _clock = fake_limiter()
    limiter.pause(10.0, "query")
    assert limiter.acquire("query", timeout=1.0) is False
    assert limiter.paused_for("query") == pytest.approx(9.0)


def test_unlisted_bucket_is_unlimited() -> None:
    limiter, clock = fake_limiter()
    start = clock.now
    for _ in range(500):
        assert limiter.acquire("upload")
    assert clock.now == start


@pytest.mark.parametrize("limits", [{"submit": (0, 1.0)}, {"submit": (5, 0.0)}, {"query": (3, -1.0)}])
def test_nonsense_limits_are_refused(limits: dict[str, tuple[int, float]]) -> None:
    with pytest.raises(ValueError, match="at least 1 call per positive window"):
        RateLimiter(limits)


def test_real_threads_never_put_six_submits_in_one_second() -> None:
    """30 acquisitions from 6 threads on the real clock: no 1 s window holds more than 5."""
    limiter = RateLimiter()
    stamps: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def caller() -> None:
        barrier.wait()
        for _ in range(5):
            assert limiter.acquire("submit", timeout=20)
            now = time.monotonic()
            with lock:
                stamps.append(now)

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(stamps) == 30
    assert max_in_window(stamps, 1.0) <= 5
    # 6 full windows of 5: the last batch starts 5 windows after the first (and not much later)
    elapsed = max(stamps) - min(stamps)
    assert 5 * 1.1 - 0.05 <= elapsed < 5 * 1.1 + 1.5


def test_real_pause_from_another_thread_holds_a_waiting_caller() -> None:
    limiter = RateLimiter({"query": (1, 0.2)})
    limiter.acquire("query")
    got: list[float] = []
    started = time.monotonic()

    def caller() -> None:
        limiter.acquire("query")
        got.append(time.monotonic() - started)

    t = threading.Thread(target=caller)
    t.start()
    limiter.pause(0.8, "query")  # arrives while the caller waits for the 0.2 s window
    t.join(timeout=5)
    assert got and got[0] >= 0.75


def test_a_slot_counts_from_when_its_answer_came_back() -> None:
    """Five submits answered 0.3 s after they start: the sixth waits a window from the answers."""
    limiter, clock = fake_limiter({"submit": (5, 1.1)})
    slots = [limiter.slot("submit") for _ in range(5)]
    for s in slots:
        s.__enter__()
    clock.now += 0.3  # the requests travel; the gateway may count them as late as now
    for s in slots:
        s.__exit__(None, None, None)
    with limiter.slot("submit"):
        started_sixth = clock.now
    assert started_sixth == pytest.approx(1000.0 + 0.3 + 1.1)  # not 1001.1: the window starts at the answers


def test_calls_still_on_the_wire_hold_their_place_in_the_window() -> None:
    limiter, _ = fake_limiter({"submit": (2, 1.0)})
    first = limiter.slot("submit")
    second = limiter.slot("submit")
    first.__enter__()
    second.__enter__()
    # Two calls in flight fill the window: a third cannot go, however long we wait, until one answers.
    assert limiter.acquire("submit", timeout=5.0) is False
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    assert limiter.acquire("submit", timeout=5.0) is True


def test_slot_threads_keep_the_gateway_window_even_when_answers_are_slow() -> None:
    """Real clock, 6 threads, 15 slow calls: arrivals (the start of each call) never exceed 5 per 1 s."""
    limiter = RateLimiter({"submit": (5, 1.1)})
    arrivals: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        with limiter.slot("submit"):
            with lock:
                arrivals.append(time.monotonic())
            time.sleep(0.15)

    threads = [threading.Thread(target=lambda: [call() for _ in range(3)]) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(arrivals) == 15
    assert max_in_window(arrivals, 1.0) <= 5
