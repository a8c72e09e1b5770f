"""One rate limit per API key for every process: real processes, a real ledger (SQLite file and
PostgreSQL), the real local gateway enforcing 5 submits/s and 50 queries/s with 429s.

The promises: several processes hammering through the shared limiter never make the gateway see more
than its limit in any one-second window (no 429 at all); the same load through per-process limiters does
draw 429s (so the check can fail); a pause one process sets (a 429's Retry-After) holds every process; the
API key is stored nowhere in the database, only a hash prefix.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lib.ledger import Ledger
from lib.shared_limit import SharedRateLimiter, key_hash

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3


def hammer(gateway, db: str | None, *, submits: int, queries: int) -> list[str]:
    start = time.time() + 4.0  # every process imports and connects first, then all begin together
    cmd = [sys.executable, "-m", "tests.fixtures.hammer", "--url", gateway.url, "--key", gateway.key,
           "--submits", str(submits), "--queries", str(queries), "--threads", "3",
           "--start-at", f"{start:.3f}"]
    if db:
        cmd += ["--db", db]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        outs.append(out.strip())
    return outs


def busiest_second(times: list[float]) -> int:
    """The most calls the gateway received inside any one-second window (its own sliding window)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def seen(gateway, category: str, since: int) -> tuple[list[float], int]:
    log = gateway.requests(category)[since:]
    return [e["t"] for e in log if e["status"] != 429], sum(1 for e in log if e["status"] == 429)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_processes_sharing_the_ledger_never_exceed_the_gateways_limits(
    backend: str, local_gateway, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_empty_url")
    Ledger(url).close()  # migrated once, before the processes race
    marks = {c: len(local_gateway.requests(c)) for c in ("submit", "query")}
    outs = hammer(local_gateway, url, submits=8, queries=60)
    sub_ok, sub_429 = seen(local_gateway, "submit", marks["submit"])
    q_ok, q_429 = seen(local_gateway, "query", marks["query"])
    print(backend, outs, "busiest second: submits", busiest_second(sub_ok), "queries", busiest_second(q_ok))
    assert (sub_429, q_429) == (0, 0), outs
    assert len(sub_ok) == PROCESSES * 8 and len(q_ok) == PROCESSES * 60
    assert busiest_second(sub_ok) <= 5 and busiest_second(q_ok) <= 50


def test_per_process_limiters_on_one_key_draw_429s(local_gateway) -> None:
    """The baseline: each process keeps 5/s by itself, so three of them together send up to 15/s."""
    mark = len(local_gateway.requests("submit"))
    hammer(local_gateway, None, submits=10, queries=0)
    _, refused = seen(local_gateway, "submit", mark)
    assert refused > 0


def test_a_pause_set_by_one_process_holds_every_process(ledger_url: str) -> None:
    one, two = Ledger(ledger_url), Ledger(ledger_url)
    try:
        a = SharedRateLimiter(one.engine, "sk-the-team-key")
        b = SharedRateLimiter(two.engine, "sk-the-team-key")
        other_key = SharedRateLimiter(two.engine, "sk-another-key")
        a.pause(1.5, "submit")
        assert 1.0 < b.paused_for("submit") <= 1.5
        assert b.paused_for("query") == 0 and other_key.paused_for("submit") == 0
        started = time.monotonic()
        assert b.acquire("submit", timeout=0.3) is False       # cannot get in while paused
        assert b.acquire("submit", timeout=5.0) is True
        assert time.monotonic() - started >= 1.4
        a.pause(0.8)                                           # all buckets (a 429 on an upload, say)
        assert b.paused_for("query") > 0.5 and b.paused_for("upload") > 0.5
        a.pause(0.1, "submit")
        assert b.paused_for("submit") > 0.5                   # a shorter pause never shortens one
    finally:
        one.close()
        two.close()


def test_the_key_is_never_stored_only_a_hash_prefix(sqlite_url: str) -> None:
    led = Ledger(sqlite_url)
    try:
        limiter = SharedRateLimiter(led.engine, "sk-secret-team-key-123")
        with limiter.slot("submit"):
            pass
        limiter.pause(1.0)
        with led.engine.connect() as conn:
            dump = "\n".join(str(tuple(r)) for t in ("rate_buckets", "rate_calls")
                             for r in conn.execute(sa.text(f"SELECT * FROM {t}")))
        assert "sk-secret" not in dump and "team-key" not in dump
        assert key_hash("sk-secret-team-key-123") in dump and len(key_hash("x")) == 16
    finally:
        led.close()
    raw = Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    assert b"sk-secret-team-key" not in raw
