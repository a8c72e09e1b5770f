"""Figure 5: our own load never trips the gateway's rate limits (HTTP 429).

One app process's worth of services (`lib.services.start_services`: ledger, one rate limiter, the
worker) against a local gateway process that enforces ToAPIs' limits (5 submits/s, 50 queries/s per
key). Ten "sessions" (threads) each press Generate `per_session` times in a burst through
`lib.playground.submit`, and an eleventh submits a 36-cell grid through `lib.compare.submit_grid`, all
at once; the worker sends, polls and archives everything until every run is finished (or a deadline).
The figure is the number of 429 answers in the gateway's request log.

Baseline, same run and same gateway: the same requests sent the naive way (ten threads POSTing with no
client-side limiter), counting the 429s the gateway answers them.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import REAL_SPEED, Row, wait_until
from lib import compare, playground
from lib.config import LOCAL_API_KEY, load_settings
from lib.contract import VideoRequest
from lib.ledger import ACTIVE, COMPLETED, Ledger
from lib.local_gateway.clock import Timeline
from lib.services import start_services
from tests.fixtures.servers import GatewayProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    sessions: int
    per_session: int
    grid: compare.GridSpec
    speed: float


FULL = Plan(sessions=10, per_session=20, speed=REAL_SPEED, grid=compare.GridSpec(
    prompts=("a glass of water on a windowsill, morning light", "a skateboarder at sunset, slow motion"),
    modes=("std", "pro"), durations=(5, 10, 15), aspects=("16:9", "9:16", "1:1")))
TINY = Plan(sessions=2, per_session=3, speed=8.0, grid=compare.GridSpec(
    prompts=("a glass of water on a windowsill",), modes=("std",), durations=(5,), aspects=("1:1", "16:9")))


def _session_requests(plan: Plan, s: int) -> list[VideoRequest]:
    return [VideoRequest(prompt=f"session {s}: a street market at dawn, take {i}", mode="std", duration=5,
                         aspect_ratio="1:1") for i in range(plan.per_session)]


def peak_per_window(times: list[float], window: float = 1.0) -> int:
    """Most requests the gateway logged inside any `window` seconds (what its sliding limiter sees)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def naive_burst(base_url: str, bodies: list[dict], threads: int) -> tuple[int, int]:
    """POST every body as fast as `threads` threads can: (429 answers, other answers)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=threads)
    session.mount(base_url, adapter)
    headers = {"Authorization": f"Bearer {LOCAL_API_KEY}"}

    def post(body: dict) -> int:
        return session.post(f"{base_url}/v1/videos/generations", json=body, headers=headers,
                            timeout=30).status_code

    with ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(post, bodies))
    session.close()
    limited = sum(1 for c in codes if c == 429)
    return limited, len(codes) - limited


def run(tiny: bool = False) -> list[Row]:
    plan = TINY if tiny else FULL
    grid = compare.expand(plan.grid)
    with tempfile.TemporaryDirectory(prefix="bench_fig5_") as d:
        tmp = Path(d)
        gw = GatewayProcess(tmp / "gateway", speed=plan.speed).start()
        services = None
        try:
            settings = load_settings(env={"TOAPIS_BASE_URL": gw.url, "PLAYGROUND_DATA": str(tmp / "data")})
            services = start_services(settings)
            t_start = time.time()
            peak = 0
            stop_watch = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not stop_watch.wait(0.5):
                    peak = max(peak, services.ledger.in_flight())

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()

            def session(s: int) -> int:
                made = 0
                for req in _session_requests(plan, s):
                    out = playground.submit(services, req, run_id=Ledger.new_id())
                    made += int(out.created)
                return made

            with ThreadPoolExecutor(plan.sessions + 1) as pool:
                futs = [pool.submit(session, s) for s in range(plan.sessions)]
                grid_fut = pool.submit(compare.submit_grid, services, grid, Ledger.new_id())
                made = sum(f.result() for f in futs)
                submitted_grid = grid_fut.result()
            total = made + submitted_grid.created
            longest = max(Timeline.for_task(c.request.effective_mode, c.request.effective_duration,
                                            plan.speed).total for c in grid.submittable)

            def settled() -> bool:
                ledger = services.ledger
                if ledger.in_flight():
                    return False
                return all(r.state != COMPLETED or r.video_path or r.error_code
                           for r in ledger.list_runs(limit=total + 10))

            finished = wait_until(settled, total / 4.5 + longest + 90, step=1.0)
            stop_watch.set()
            watcher.join(5)
            elapsed = time.time() - t_start
            log_rows = gw.requests()
            ours = [r for r in log_rows if r["t"] >= t_start]
            limited = sum(1 for r in ours if r["status"] == 429)
            by_cat: dict[str, int] = {}
            for r in ours:
                by_cat[r["category"]] = by_cat.get(r["category"], 0) + 1
            limited_at = [{"t": round(r["t"] - t_start, 3), "category": r["category"], "method": r["method"]}
                          for r in ours if r["status"] == 429]
            peaks = {cat: peak_per_window([r["t"] for r in ours
                                           if r["category"] == cat and r["status"] != 429])
                     for cat in ("submit", "query")}
            still_active = services.ledger.count_runs() - sum(
                1 for r in services.ledger.list_runs(limit=total + 10) if r.state not in ACTIVE)
            stats = dict(services.worker.stats)
            services.stop()
            services = None
            bodies = [req.to_payload() for s in range(plan.sessions) for req in _session_requests(plan, s)]
            bodies += [c.request.to_payload() for c in grid.submittable]
            naive_429, naive_ok = naive_burst(gw.url, bodies, plan.sessions)
        finally:
            if services is not None:
                services.stop()
            gw.stop()
    notes = {"runs": total, "grid_cells": len(grid.submittable), "peak_in_flight": peak,
             "all_finished": finished, "active_left": still_active, "seconds": round(elapsed, 1),
             "requests_by_category": by_cat, "worker_stats": stats, "naive_accepted": naive_ok,
             "gateway_speed": plan.speed, "limited": limited_at,
             "max_accepted_in_any_1s_window_at_gateway": peaks}
    return [Row("5", f"gateway 429s ({total} runs, peak {peak} in flight)", float(limited), float(naive_429),
                "count", "0", limited == 0, ratio=(limited / naive_429) if naive_429 else None,
                baseline_name="naive burst, no limiter", notes=notes)]
