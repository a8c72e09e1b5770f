"""lib/passcode.py: the limits a guesser meets (fake clock), plus timing and threads on the real clock."""
from __future__ import annotations

import statistics
import threading
import time

import pytest

from lib import passcode
from lib.passcode import FREE_FAILURES, GLOBAL_PER_MINUTE, PasscodeGuard, delay_after

SECRET = "correct horse battery staple"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_guard(**kw) -> tuple[PasscodeGuard, FakeClock]:
    clock = FakeClock()
    return PasscodeGuard(SECRET, clock=clock, sleep=clock.sleep, **kw), clock


def test_three_free_tries_then_a_doubling_wait() -> None:
    assert [delay_after(n) for n in range(1, 9)] == [0, 0, 2, 4, 8, 16, 32, 64]
    assert delay_after(100) == passcode.MAX_DELAY
    guard, clock = fake_guard()
    verdicts = [guard.attempt("1.2.3.4", f"guess {i}") for i in range(FREE_FAILURES)]
    assert [v.ok for v in verdicts] == [False] * 3
    assert verdicts[0].message == "That passcode is not right."
    assert verdicts[1].message == ("That passcode is not right. After one more wrong try you will have to "
                                   "wait.")
    assert verdicts[2].message == "That passcode is not right. Wait 2 s before the next try."
    refused = guard.attempt("1.2.3.4", "guess 3")
    assert not refused.ok and 1.6 < refused.wait <= 2.0
    assert refused.message == ("Too many wrong passcodes from your address. Try again in 2 s; every further "
                               "wrong one doubles the wait.")
    assert guard.compared == 3  # the refused guess was not looked at
    clock.now += 2.0
    assert guard.attempt("1.2.3.4", "guess 4").wait == pytest.approx(4.0, abs=0.5)
    assert guard.compared == 4


def test_a_right_guess_during_a_wait_still_waits_then_opens() -> None:
    guard, clock = fake_guard()
    for i in range(5):
        clock.now += 60
        guard.attempt("9.9.9.9", f"wrong {i}")
    locked = guard.attempt("9.9.9.9", SECRET)
    assert not locked.ok and locked.wait > 7 and "Try again in 8 s" in (locked.message or "")
    clock.now += locked.wait
    assert guard.attempt("9.9.9.9", SECRET).ok
    assert guard.attempt("9.9.9.9", "a typo after success").message == "That passcode is not right."


def test_other_addresses_are_not_slowed_by_one_guesser_until_the_global_limit() -> None:
    guard, _ = fake_guard()
    for i in range(6):
        guard.attempt("attacker", f"wrong {i}")
    assert guard.attempt("friend", SECRET).ok


def test_rotating_addresses_get_at_most_the_global_limit_a_minute() -> None:
    guard, clock = fake_guard()
    judged = 0
    for i in range(500):  # 500 addresses, one guess each, within one minute
        clock.now += 0.1
        verdict = guard.attempt(f"10.0.{i // 250}.{i % 250}", f"wrong {i}")
        judged += "not right" in (verdict.message or "")
    assert judged == GLOBAL_PER_MINUTE == guard.compared
    last = guard.attempt("someone new", SECRET)
    assert not last.ok and "on this server in the last minute" in (last.message or "")
    clock.now += 60
    assert guard.attempt("someone new", SECRET).ok


def test_client_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passcode, "MAX_CLIENTS", 50)
    guard, _ = fake_guard(global_per_minute=10**9)
    for i in range(1000):
        guard.attempt(f"addr {i}", "wrong")
    assert len(guard._clients) <= 51


def test_parallel_guesses_from_one_address_cannot_slip_through() -> None:
    guard = PasscodeGuard(SECRET, answer_time=0.05)
    barrier = threading.Barrier(40)

    def one(i: int) -> None:
        barrier.wait()
        guard.attempt("one address", f"wrong {i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert guard.compared == FREE_FAILURES


def test_right_and_wrong_guesses_take_the_same_time() -> None:
    """Each compared guess is answered ANSWER_TIME after it arrived; right and wrong medians agree
    within 5 ms (the sleep's own jitter), and both are at least the answer time."""
    guard = PasscodeGuard(SECRET, answer_time=0.05, global_per_minute=10**9)
    right, wrong = [], []
    for i in range(25):
        for text, sink in ((SECRET, right), ("correct horse battery stapler", wrong)):
            t0 = time.perf_counter()
            guard.attempt(f"timing {i} {len(sink)} {text[-1]}", text)  # fresh address: never waits
            sink.append(time.perf_counter() - t0)
    assert min(right) >= 0.049 and min(wrong) >= 0.049
    assert abs(statistics.median(right) - statistics.median(wrong)) < 0.005, (right, wrong)


def test_the_guard_is_shared_by_every_session_of_the_process() -> None:
    passcode.reset()
    try:
        assert passcode.guard_for(SECRET) is passcode.guard_for(SECRET)
        assert passcode.guard_for(SECRET) is not passcode.guard_for(SECRET + "!")
    finally:
        passcode.reset()


def test_loopback_connections_are_one_client() -> None:
    assert passcode.client_key(None) == passcode.LOCAL_CLIENT
    assert passcode.client_key("203.0.113.9") == "203.0.113.9"
    assert passcode.client_key(object()) == passcode.LOCAL_CLIENT
