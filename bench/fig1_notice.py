"""Figure 1: how fast a finished run is noticed, what that costs in status GETs, and when a browser shows it.

Part A. One local gateway (its own process, like the real one is remote) and N runs of mixed modes,
durations and aspects arriving over a window. Both schedules watch the same runs:
- each run goes through the real path: a draft in a ledger, the real Worker (adaptive schedule)
  submits, polls and archives it;
- as soon as the worker has submitted it, the bench also polls the same task on the docs' fixed
  schedule (first look 5 s after submit, then every 10 s) and writes what it sees into a second ledger
  the same way (`apply_task`). The bench counts its own GETs; the worker's are the gateway's logged GETs
  for the task minus those.
Same runs, so the same completion moments (including any time a task sits at 99 % while the gateway's
single render thread catches up: recorded per run as "hold").
The gateway runs its REALISTIC progress model (lib/local_gateway/README.md "Clock": std 5 s ≈ 80 s up to
pro 15 s ≈ 190 s, a random queue, uneven progress with jumps and stalls), seeded so every run of the
bench sees the same task shapes. Both schedules are scaled by the same time factor F as the gateway's
clock (gateway speed F; F = 1 is real time, the default), and the worker's first look is 5/F. The full
figure runs at F = 1 (about 6 minutes); `--tiny` (the CI smoke) compresses time 12×.
"Noticed" is the ledger's completed_at; "finished" is the gateway's own completion time from its task
store (creation time + timeline, or the render's end if later: finer than the API's whole seconds).

Part B. A real `streamlit run app.py` (with its own worker) on the Compose page in headless Chromium:
runs are written as drafts into the app's ledger; an in-page script stamps (epoch ms) the moment each
card first says "Done"; the lag is that stamp minus the ledger's completed_at.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.common import FIXED_EVERY, FIXED_FIRST, REAL_SPEED, Row, median, percentile, wait_until
from lib.archive import Archive
from lib.config import LOCAL_API_KEY
from lib.contract import VideoRequest
from lib.gateway import GatewayClient, GatewayError, Task
from lib.ledger import COMPLETED, TERMINAL, Ledger, bulk_insert, run_row
from lib.local_gateway.clock import REALISTIC, Timeline, nominal_realistic
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.services import worker_client
from lib.worker import Worker
from tests.fixtures.servers import CHROMIUM, CHROMIUM_ARGS, DESKTOP, AppServer, GatewayProcess, open_app

log = logging.getLogger(__name__)

MIX = [(m, d) for d in (5, 10, 15) for m in ("std", "pro")]
ASPECTS = ("16:9", "9:16", "1:1")
PROMPTS = ("a red fox running through fresh snow", "waves breaking on a black sand beach at dusk",
           "a paper boat drifting down a rainy street", "time-lapse of clouds over a mountain ridge",
           "a hummingbird hovering at a purple flower")


@dataclass(frozen=True)
class Plan:
    n: int
    factor: float          # time compression against the real gateway's durations
    window: float          # arrivals spread over this many seconds
    browser_runs: int
    browser_speed: float
    mix: tuple[tuple[str, int], ...] = tuple(MIX)
    aspects: tuple[str, ...] = ASPECTS
    progress: str = REALISTIC   # the gateway's progress model ("fast": the old near-linear clock)
    seed: int | None = 1        # the same task shapes on every run of the bench
    history: int = 0            # finished runs of each kind already in the worker's ledger (`remember`)

    @property
    def speed(self) -> float:
        return self.factor if self.progress == REALISTIC else REAL_SPEED * self.factor

    def longest(self) -> float:
        """An upper bound on any task's clock (REALISTIC draws each total around its nominal one)."""
        if self.progress == REALISTIC:
            return max(1.6 * nominal_realistic(m, d) for m, d in self.mix) / self.speed
        return max(Timeline.for_task(m, d, self.speed).total for m, d in self.mix)


# Real time: 40 tasks of 1.3-3 minutes arriving over 90 s (up to 40 in flight at once; a wider window keeps
# the gateway's single render thread ahead of the clock on a busy 2-core machine).
FULL = Plan(n=40, factor=1.0, window=90.0, browser_runs=8, browser_speed=1.0, history=20)
# Tiny: a smoke check only, time compressed 12×. Cheap renders (std 5 s 1:1) so the render queue does
# not set the pace.
TINY = Plan(n=3, factor=12.0, window=1.0, browser_runs=2, browser_speed=6.0, mix=(("std", 5),),
            aspects=("1:1",))


def _requests(plan: Plan) -> list[VideoRequest]:
    """Mixed modes, durations and aspects, in an order that spreads the long ones over the window."""
    combos = itertools.cycle(plan.mix)
    out = []
    for i in range(plan.n):
        mode, duration = next(combos)
        aspect = plan.aspects[(i // len(plan.mix)) % len(plan.aspects)]
        out.append(VideoRequest(prompt=f"{PROMPTS[i % len(PROMPTS)]} (take {i})", mode=mode,
                                duration=duration, aspect_ratio=aspect))
    return out


def remember(ledger: Ledger, plan: Plan) -> int:
    """Yesterday's runs: `plan.history` finished runs of each kind in the worker's ledger, as a playground
    in use has them (what the worker learns its prior from, lib/worker.py `_experience`). Their durations
    come from the same REALISTIC clock with other seeds than the bench's tasks, as our worker recorded
    them (submit → noticed done, noticed half a second after the finish)."""
    rows = []
    now = time.time() - 86400
    for mode, duration in plan.mix:
        for k in range(plan.history):
            tl = Timeline.for_task(mode, duration, plan.speed, f"{REALISTIC}:history-{k}")
            req = VideoRequest(prompt=f"{PROMPTS[k % len(PROMPTS)]} (yesterday {k})", mode=mode,
                               duration=duration, aspect_ratio=plan.aspects[k % len(plan.aspects)])
            row = run_row(Ledger.new_id(), req, 0.0, now=now, state=COMPLETED,
                          task_id=f"old_{mode}{duration}_{k}")
            done = now + 0.2 + tl.total + 0.5
            row.update(submitted_at=now + 0.2, completed_at=done, updated_at=done, progress=100, polls=6,
                       next_poll_at=None, video_path=f"videos/{row['run_id']}.mp4", archived_at=done + 1)
            rows.append(row)
            now += 60
    bulk_insert(ledger, rows)
    return len(rows)


def gateway_finish_times(db: Path) -> dict[str, tuple[float, float]]:
    """task id -> (completion moment, seconds held at 99 % for the render), from the gateway's store
    (sub-second, unlike the API's whole seconds)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT id, created_at, mode, duration, speed, rendered_at, progress FROM tasks "
                           "WHERE fail_code IS NULL AND rendered_at IS NOT NULL").fetchall()
    finally:
        con.close()
    out = {}
    for tid, created, mode, dur, speed, rendered, progress in rows:
        nominal = created + Timeline.for_task(mode, int(dur), float(speed), progress).total
        out[tid] = (max(nominal, rendered), max(0.0, rendered - nominal))
    return out


def query_counts(gw: GatewayProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in gw.requests("query"):
        if r.get("method") == "GET" and r.get("task_id"):
            counts[r["task_id"]] = counts.get(r["task_id"], 0) + 1
    return counts


class FixedPoller:
    """The docs' schedule: look at submit + first, then every `every` s, until the task is terminal."""

    def __init__(self, ledger: Ledger, client: GatewayClient, first: float, every: float) -> None:
        self.ledger, self.client, self.first, self.every = ledger, client, first, every
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="fixed-poll")
        self._thread = threading.Thread(target=self._loop, name="fixed-poller", daemon=True)
        self.errors = 0
        self.gets: dict[str, int] = {}

    def start(self) -> None:
        self._thread.start()

    def add(self, run_id: str, task_id: str, submitted: float) -> None:
        with self._lock:
            heapq.heappush(self._heap, (submitted + self.first, next(self._seq), run_id, task_id))

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            due = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
                nxt = self._heap[0][0] if self._heap else now + 0.05
            for at, _, run_id, task_id in due:
                self._pool.submit(self._look, at, run_id, task_id)
            self._stop.wait(max(0.005, min(0.05, nxt - time.time())))

    def _look(self, at: float, run_id: str, task_id: str) -> None:
        # The schedule is anchored to the submit time (5, 15, 25 … s), not to when a look returned.
        nxt = at + self.every
        with self._lock:
            self.gets[task_id] = self.gets.get(task_id, 0) + 1
        try:
            task = self.client.get_task(task_id)
        except GatewayError:
            self.errors += 1
            task = None
        if task is not None:
            self.ledger.apply_task(run_id, task, None if task.terminal else nxt)
            if task.terminal:
                return
        with self._lock:
            heapq.heappush(self._heap, (nxt, next(self._seq), run_id, task_id))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True)


def part_a(plan: Plan, tmp: Path) -> list[Row]:
    speed = plan.speed
    gw = GatewayProcess(tmp / "gateway", speed=speed, progress=plan.progress, seed=plan.seed).start()
    adaptive = Ledger(f"sqlite:///{tmp / 'adaptive.db'}")
    remembered = remember(adaptive, plan) if plan.history else 0
    fixed = Ledger(f"sqlite:///{tmp / 'fixed.db'}")
    limiter = RateLimiter()  # one per process, shared by both clients, as in the app
    archive = Archive(tmp / "archive", fetcher=SafeFetcher(FetchPolicy.for_gateway(gw.url)))
    worker = Worker(adaptive, worker_client(gw.url, LOCAL_API_KEY, limiter), archive,
                    first_look=FIXED_FIRST / plan.factor)
    fixed_client = worker_client(gw.url, LOCAL_API_KEY, limiter)
    poller = FixedPoller(fixed, fixed_client, FIXED_FIRST / plan.factor, FIXED_EVERY / plan.factor)
    reqs = _requests(plan)
    pairs: list[tuple[str, str]] = []
    try:
        worker.start()
        poller.start()
        t0 = time.time()
        for i, req in enumerate(reqs):
            time.sleep(max(0.0, t0 + i * plan.window / plan.n - time.time()))
            run_id, twin_id = Ledger.new_id(), Ledger.new_id()
            adaptive.create_run(run_id, req, 0.0)
            worker.wake()
            if not wait_until(lambda rid=run_id: bool((r := adaptive.get(rid)) and r.task_id), 30, 0.01):
                log.warning("figure 1: run %d was not submitted in 30 s", i)
                continue
            run = adaptive.get(run_id)
            assert run is not None and run.task_id and run.submitted_at
            fixed.create_run(twin_id, req, 0.0)
            fixed.mark_submitted(twin_id, Task.from_payload({"id": run.task_id, "status": "queued"}),
                                 run.submitted_at + FIXED_FIRST / plan.factor)
            poller.add(twin_id, run.task_id, run.submitted_at)
            pairs.append((run_id, twin_id))
        longest = plan.longest()

        def done() -> bool:
            return all(r is not None and r.state in TERMINAL and (r.video_path or r.error_code)
                       for r in (adaptive.get(a) for a, _ in pairs)) and all(
                r is not None and r.state in TERMINAL for r in (fixed.get(f) for _, f in pairs))

        if not wait_until(done, longest + 120, step=0.5):
            log.warning("figure 1: not every run finished in time")
        finish = gateway_finish_times(gw.data_dir / "local_gateway.db")
        counts = query_counts(gw)
    finally:
        poller.stop()
        worker.stop()
        gw.stop()

    per_run: list[str] = []

    def lags(ledger: Ledger, ids: list[str], fixed_side: bool) -> tuple[list[float], list[int], list[float]]:
        out, gets, holds = [], [], []
        for rid in ids:
            run = ledger.get(rid)
            if run is None or run.task_id is None:
                continue
            mine = poller.gets.get(run.task_id, 0)
            gets.append(mine if fixed_side else counts.get(run.task_id, 0) - mine)
            if run.completed_at is not None and run.task_id in finish:
                done, hold = finish[run.task_id]
                out.append(run.completed_at - done)
                holds.append(hold)
                if not fixed_side:  # arrival order: mode duration aspect, lag s, GETs
                    per_run.append(f"{run.mode} {run.duration} {run.aspect_ratio} "
                                   f"{out[-1]:.2f}s {gets[-1]}")
        return out, gets, holds

    a_lag, a_gets, holds = lags(adaptive, [a for a, _ in pairs], False)
    f_lag, f_gets, _ = lags(fixed, [f for _, f in pairs], True)
    # Runs that finished on the gateway's clock (no render hold): the schedules' own cost.
    clean = [i for i, h in enumerate(holds) if h < 0.5]
    a_clean = sum(a_gets[i] for i in clean) / max(1, len(clean))
    f_clean = sum(f_gets[i] for i in clean) / max(1, len(clean))
    adaptive.close()
    fixed.close()
    a_med, a_p95 = median(a_lag), percentile(a_lag, 95)
    f_med, f_p95 = median(f_lag), percentile(f_lag, 95)
    a_gpr = sum(a_gets) / max(1, len(a_gets))
    f_gpr = sum(f_gets) / max(1, len(f_gets))
    notes = {"runs": plan.n, "factor": plan.factor, "gateway_speed": speed, "window_s": plan.window,
             "progress": plan.progress, "seed": plan.seed, "history_runs": remembered,
             "adaptive_noticed": len(a_lag), "fixed_noticed": len(f_lag), "worker_stats": worker.stats,
             "fixed_errors": poller.errors, "adaptive_lags": [round(x, 3) for x in sorted(a_lag)],
             "fixed_lags": [round(x, 3) for x in sorted(f_lag)],
             "adaptive_max": max(a_lag, default=None), "adaptive_gets": a_gets, "fixed_gets": f_gets,
             "hold_s": [round(h, 2) for h in holds], "adaptive_per_run": per_run,
             "runs_without_hold": len(clean),
             "gets_per_run_without_hold": {"adaptive": round(a_clean, 2), "fixed": round(f_clean, 2)}}
    base = f"fixed 5/{plan.factor:g} s + every 10/{plan.factor:g} s"
    return [
        Row("1", "notice lag median", a_med, f_med, "s", "≤ 1 s",
            None if a_med is None else a_med <= 1.0, baseline_name="fixed", notes=notes),
        Row("1", "notice lag p95", a_p95, f_p95, "s", "≤ 3 s",
            None if a_p95 is None else a_p95 <= 3.0, baseline_name="fixed"),
        Row("1", "status GETs per run", a_gpr, f_gpr, "", "≤ 0.5× fixed",
            (a_gpr / f_gpr) <= 0.5 if f_gpr else None, baseline_name=base),
        Row("1", f"  … runs with no render hold ({len(clean)})", a_clean if clean else None,
            f_clean if clean else None, "", "(info)", None, baseline_name="fixed"),
    ]


_STAMP_JS = """
() => {
  window.__done = {};
  const look = () => {
    for (const el of document.querySelectorAll('[class*="st-key-card_"]')) {
      const m = el.className.match(/st-key-card_([A-Za-z0-9_-]+)/);
      if (!m || window.__done[m[1]]) continue;
      if (el.innerText.includes('Done')) window.__done[m[1]] = performance.timeOrigin + performance.now();
    }
  };
  window.__ticks = [];
  let last = null;
  const tick = () => {
    const live = document.querySelector('.st-key-frame_live');
    const text = live ? live.innerText : null;
    if (text && text !== last) {
      last = text;
      window.__ticks.push(performance.timeOrigin + performance.now());
    }
  };
  new MutationObserver(() => { look(); tick(); }).observe(
    document.body, {subtree: true, childList: true, characterData: true});
  setInterval(() => { look(); tick(); }, 25);
}
"""


def part_b(plan: Plan, tmp: Path) -> list[Row]:
    from playwright.sync_api import sync_playwright

    gw = GatewayProcess(tmp / "gateway_b", speed=plan.browser_speed).start()
    app = AppServer(tmp / "app_b", gw, extra_env={"PLAYGROUND_ARCHIVE": str(tmp / "archive_b")})
    lags: list[float] = []
    tick_times: list[float] = []
    try:
        app.start()
        ledger = Ledger(f"sqlite:///{app.db_path}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport=DESKTOP).new_page()
                ids = []
                for i in range(plan.browser_runs):
                    rid = Ledger.new_id()
                    ledger.create_run(rid, VideoRequest(prompt=f"a lighthouse in fog, take {i}", mode="std",
                                                        duration=5, aspect_ratio="1:1"), 0.0)
                    ids.append(rid)
                    if i == 0:
                        # A page only ticks while something is in flight when it (re)runs, as after a
                        # Generate press; runs added later are picked up by that tick.
                        open_app(page, app.url, timeout=60_000)
                        page.evaluate(_STAMP_JS)
                    time.sleep(2.0 / plan.browser_speed)
                total = Timeline.for_task("std", 5, plan.browser_speed).total

                def seen() -> bool:
                    stamps = page.evaluate("() => window.__done")
                    return all(r in stamps for r in ids)

                wait_until(seen, total + 60 + 2 * plan.browser_runs, step=0.5)
                stamps = page.evaluate("() => window.__done")
                tick_times = page.evaluate("() => window.__ticks")
            finally:
                browser.close()
        for rid in ids:
            run = ledger.get(rid)
            if run is not None and run.completed_at is not None and rid in stamps:
                lags.append(stamps[rid] / 1000 - run.completed_at)
        ledger.close()
    finally:
        app.stop()
        gw.stop()
    med = median(lags)
    # The caption says "updated HH:MM:SS": it changes once a second, so gaps between its changes that are
    # about one tick long measure the live fragment's period as the browser sees it.
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(tick_times)]
    period = median([g for g in gaps if 0.5 < g < 1.5])
    return [Row("1", "ledger→browser median", med, period, "s", "≤ 1 s", None if med is None else med <= 1.0,
                baseline_name="live tick period",
                notes={"runs": plan.browser_runs, "seen": len(lags), "lags": [round(x, 3) for x in lags],
                       "tick_gaps": [round(g, 3) for g in gaps[:50]]})]


def run(tiny: bool = False, scale: float | None = None) -> list[Row]:
    """`scale`: compress time this many times (1 = real durations) instead of the plan's own factor."""
    plan = TINY if tiny else FULL
    if scale is not None:
        plan = dataclasses.replace(plan, factor=scale)
    with tempfile.TemporaryDirectory(prefix="bench_fig1_") as d:
        rows = part_a(plan, Path(d))
        rows += part_b(plan, Path(d))
    return rows
