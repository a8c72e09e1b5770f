"""A 36-cell grid through the real worker and the local gateway: no 429, never more than 5 submits in any
one-second window, measured on the gateway's own request log (its clock, not ours).

The local gateway enforces ToAPIs' limit (5 submits per second per key) and answers 429 past it, so a
single burst from the grid would show up in its log.
"""
from __future__ import annotations

import time
from pathlib import Path

from lib import compare
from lib.archive import Archive
from lib.config import load_settings
from lib.gateway import GatewayClient
from lib.ledger import DRAFT, SUBMITTING, Ledger
from lib.ratelimit import RateLimiter
from lib.services import Services
from lib.worker import Worker

# 4 prompt variants × std × 5/10/15 s × 16:9/9:16/1:1 = 36 cells (std keeps the renders cheap)
SPEC = compare.GridSpec(prompts=("fox in snow", "neon street", "ocean drone", "coffee macro"),
                        modes=("std",), durations=(5, 10, 15), aspects=("16:9", "9:16", "1:1"))


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of events inside any half-open window [t, t + window)."""
    times = sorted(times)
    best = 0
    j = 0
    for i in range(len(times)):
        while times[i] - times[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_window_counter() -> None:
    assert most_in_any_window([0.0, 0.2, 0.4, 0.6, 0.8, 0.99]) == 6
    assert most_in_any_window([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) == 5
    assert most_in_any_window([]) == 0


def test_a_36_cell_grid_is_submitted_under_the_limit(local_gateway, ledger: Ledger, tmp_path: Path) -> None:
    settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path / "data")})
    limiter = RateLimiter()
    client = GatewayClient(local_gateway.url, local_gateway.key, limiter=limiter)
    archive = Archive(tmp_path / "archive")
    worker = Worker(ledger, client, archive, threads=8, first_look=30.0)
    services = Services(settings, ledger, client, archive, worker, None, limiter)

    plan = compare.expand(SPEC, settings.prices)
    assert len(plan.cells) == 36 and plan.ok
    group_id = ledger.new_id()
    result = compare.submit_grid(services, plan, group_id)
    assert result.ok and result.created == 36

    worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = ledger.group(group_id)
            if all(r.state not in (DRAFT, SUBMITTING) for r in runs):
                break
            time.sleep(0.2)
    finally:
        worker.stop()

    runs = ledger.group(group_id)
    assert len(runs) == 36
    unsent = [(r.state, r.error_code, r.error_message) for r in runs if not r.task_id]
    assert unsent == []
    log = local_gateway.requests()
    submits = [e for e in log if e["category"] == "submit"]
    assert len(submits) == 36
    assert [e for e in log if e["status"] == 429] == []
    times = sorted(float(e["t"]) for e in submits)
    peak = most_in_any_window(times)
    tightest = min(b - a for a, b in zip(times, times[5:], strict=False))
    assert peak <= 5, f"{peak} submits inside one second (6 submits within {tightest:.3f} s)"
    # and it was paced, not slow: 36 submits at 5 per 1.1 s take about 7 s
    span = max(float(e["t"]) for e in submits) - min(float(e["t"]) for e in submits)
    assert 6.0 <= span <= 20.0, span
