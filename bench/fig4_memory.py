"""Figure 4: server memory per idle browser session, and memory growth over a soak with runs in flight.

A real `streamlit run app.py` (tests.fixtures.servers.AppServer) against a local gateway process; RSS
of the server process from /proc. Sessions are pages of one headless Chromium, each in its own browser
context (its own cookies and websocket, so its own Streamlit session).

Idle: the baseline is the server with one session open (services started, every import done); then
`sessions` more are opened and left idle; per session = (RSS after - baseline) / sessions.

Soak: `per_session` runs per session are kept in flight (drafts written into the app's ledger, sent
and polled by the app's own worker; when runs finish, new ones take their place), and every page is
reloaded once so that its live fragments tick (a page starts ticking when it runs with work in flight,
as after a Generate press; a page left idle does not notice runs made elsewhere). Each page counts its
live caption's changes, so the notes show whether every session really ticked through the soak. RSS
is sampled every few seconds; growth compares the end of the soak with the start of the steady state
(after a warm-up of min(60 s, 20 % of the soak)).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, median, rss_mb, wait_until
from lib.contract import VideoRequest
from lib.ledger import COMPLETED, DRAFT, SUBMITTING, Ledger, RunFilter
from tests.fixtures.servers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    AppServer,
    GatewayProcess,
    ScriptRuns,
    open_app,
)

log = logging.getLogger(__name__)


COUNTED_PAGES = 3  # sessions whose script runs (full vs fragment) are counted from their websocket


@dataclass(frozen=True)
class Plan:
    sessions: int
    per_session: int
    soak: float
    run_seconds: float     # how long one run stays in flight (sets the gateway speed)
    sample_every: float


def plan_for(tiny: bool, soak_seconds: float | None) -> Plan:
    if tiny:
        soak = 8.0 if soak_seconds is None else soak_seconds
        return Plan(sessions=3, per_session=2, soak=soak, run_seconds=5.0, sample_every=1.0)
    soak = 600.0 if soak_seconds is None else soak_seconds
    return Plan(sessions=20, per_session=5, soak=soak, run_seconds=max(30.0, soak / 2), sample_every=5.0)


def _open_ticking(page: object, url: str, timeout: float = 60_000) -> None:
    """Load the page and wait for its run cards. Not for "script not running": with live fragments
    ticking every second in every session, a loaded server may never be idle at the moment we look."""
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']",  # type: ignore[attr-defined]
                           timeout=timeout)
    page.wait_for_selector("[class*='st-key-card_']", timeout=timeout)  # type: ignore[attr-defined]
    page.evaluate(_COUNT_TICKS)  # type: ignore[attr-defined]


_COUNT_TICKS = """
() => {
  window.__ticks = 0;
  let last = null;
  setInterval(() => {
    const live = document.querySelector('.st-key-frame_live');
    const text = live ? live.innerText : null;
    if (text && text !== last) { last = text; window.__ticks += 1; }
  }, 100);
}
"""


def proc_status(pid: int) -> dict[str, int]:
    """Threads and the anonymous part of RSS (heap, thread stacks, malloc arenas), from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Threads", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0])
    return out


def _ticks(pages: list) -> list[int]:
    """How often each page's live caption ("updated HH:MM:SS") has changed: its fragment is ticking."""
    out = []
    for page in pages:
        try:
            out.append(int(page.evaluate("() => window.__ticks ?? -1")))
        except Exception:
            out.append(-1)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy(since: tuple[int, int] | None = None) -> tuple[int, int] | float:
    """(busy, total) jiffies from /proc/stat; with `since`, the busy share of all cores in between."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + vals[4]
    now = (sum(vals) - idle, sum(vals))
    if since is None:
        return now
    return (now[0] - since[0]) / max(1, now[1] - since[1])


def _sample(pid: int, n: int = 3, gap: float = 0.5) -> float:
    vals = []
    for _ in range(n):
        vals.append(rss_mb(pid))
        time.sleep(gap)
    return median(vals) or vals[-1]


class Refill:
    """Keeps `target` runs in flight by writing new drafts as runs finish (the app's worker sends them)."""

    def __init__(self, ledger: Ledger, target: int) -> None:
        self.ledger, self.target = ledger, target
        self.created = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-refill", daemon=True)

    def fill(self) -> None:
        for _ in range(max(0, self.target - self.ledger.in_flight())):
            req = VideoRequest(prompt=f"a slow pan over a misty forest, take {self.created}", mode="std",
                               duration=5, aspect_ratio="1:1")
            self.ledger.create_run(Ledger.new_id(), req, 0.0)
            self.created += 1

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.fill()
            except Exception:
                log.exception("refill failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def trace_report(snaps: Path, since: float, top: int = 12) -> list[str]:
    """Where the heap grew between the first snapshot taken `since` seconds into the server's life or
    later and the last one: the biggest growths, grouped by allocating traceback (innermost 4 frames)."""
    import tracemalloc

    files = sorted(snaps.glob("snap_*.pickle"))
    later = [f for f in files if float(f.stem.split("_")[1]) >= since]
    if len(later) < 2:
        return [f"only {len(later)} snapshot(s) after {since:.0f} s: nothing to compare"]
    first, last = (tracemalloc.Snapshot.load(str(f)) for f in (later[0], later[-1]))
    mb = [sum(t.size for t in s.traces) / 1e6 for s in (first, last)]
    head = f"traced heap {later[0].stem} → {later[-1].stem}: {mb[0]:.1f} → {mb[1]:.1f} MB"
    lines = [head]
    for stat in last.compare_to(first, "traceback")[:top]:
        frames = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(stat.traceback)[-4:][::-1])
        lines.append(f"{stat.size_diff / 1e6:+.2f} MB ({stat.count_diff:+d} blocks) {frames}")
    return lines


def probe_lines(path: Path) -> list[dict]:
    """The probe's samples (bench/probe_server.py), one dict per line; none when it did not run."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def probe_report(lines: list[dict], since: float) -> dict[str, list[float]]:
    """Each probe field at the first sample `since` seconds into the server's life or later, at the last
    sample, and the change: which part of memory grew over the soak."""
    later = [s for s in lines if s["t"] >= since]
    if len(later) < 2:
        return {}
    first, last = later[0], later[-1]
    out = {k: [first[k], last[k], round(last[k] - first[k], 2)] for k in first if k not in ("t", "census")}
    counted = [s["census"] for s in later if "census" in s]
    if len(counted) >= 2:  # object types whose count grew most between the first and last census
        a, b = counted[0], counted[-1]
        grew = sorted(((b[k] - a.get(k, 0), k) for k in b), reverse=True)[:10]
        out["census_growth"] = [[k, a.get(k, 0), b[k]] for d, k in grew if d > 0]
    return out


PROBE_SERIES_KEYS = ("t", "rss", "in_use", "free_held", "py_used", "sqlite", "threads")


def run(tiny: bool = False, soak_seconds: float | None = None, trace: bool = False) -> list[Row]:
    """`trace=True` runs the server under tracemalloc (slower) and adds where its heap grew to the notes."""
    from playwright.sync_api import sync_playwright

    plan = plan_for(tiny, soak_seconds)
    speed = 15.0 / plan.run_seconds  # the gateway's std 5 s clip takes 15 s at speed 1
    series: list[tuple[float, float]] = []
    traced: list[str] = []
    counted: list[ScriptRuns] = []
    with tempfile.TemporaryDirectory(prefix="bench_fig4_") as d:
        tmp = Path(d)
        gw = GatewayProcess(tmp / "gateway", speed=speed).start()
        app = AppServer(tmp / "app", gw, extra_env={"PLAYGROUND_ARCHIVE": str(tmp / "archive")})
        probe_file = tmp / "probe.jsonl"
        if trace:
            every = max(1.0, round(plan.soak / 6))
            app.launcher = (str(Path(__file__).with_name("traced_server.py")), str(tmp / "snaps"), str(every))
        else:  # the light probe: where RSS goes (malloc in use / held free, SQLite, threads, sessions)
            app.launcher = (str(Path(__file__).with_name("probe_server.py")), str(probe_file),
                            str(plan.sample_every))
        try:
            app_t0 = time.monotonic()
            app.start()
            assert app.proc is not None
            pid = app.proc.pid
            ledger = Ledger(f"sqlite:///{app.db_path}")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    pages = []
                    first = browser.new_context(viewport=DESKTOP).new_page()
                    open_app(first, app.url, timeout=90_000)
                    pages.append(first)
                    time.sleep(3)
                    base = _sample(pid)
                    for _ in range(plan.sessions):
                        page = browser.new_context(viewport=DESKTOP).new_page()
                        if len(counted) < COUNTED_PAGES:  # parsing every frame of 20 pages would load us
                            counted.append(ScriptRuns(page))
                        open_app(page, app.url, timeout=90_000)
                        pages.append(page)
                    time.sleep(5)
                    with_sessions = _sample(pid)
                    per_session = (with_sessions - base) / plan.sessions

                    refill = Refill(ledger, plan.sessions * plan.per_session)
                    refill.fill()
                    # Let the worker send them all first: while it does, every send changes the ledger and
                    # every ticking session reruns its page, which is the submit burst, not the soak.
                    sending = RunFilter(states=(DRAFT, SUBMITTING))
                    wait_until(lambda: ledger.count_runs(sending) == 0, 180, 0.5)
                    refill.start()  # from here on runs keep finishing and being replaced
                    reload_s: list[float | None] = []
                    busy0, cpu_r0, t_r0 = machine_busy(), cpu_seconds(pid), time.monotonic()
                    for page in pages[1:]:
                        started = time.monotonic()
                        try:
                            _open_ticking(page, app.url)  # reload: start ticking with runs in flight
                            reload_s.append(round(time.monotonic() - started, 2))
                        except Exception as exc:  # a page the loaded server did not serve in time
                            log.warning("figure 4: a session did not show its runs: %s", exc)
                            reload_s.append(None)
                    span = time.monotonic() - t_r0
                    reload_cpu = {"server_cores": round((cpu_seconds(pid) - cpu_r0) / span, 2),
                                  "machine_busy": round(machine_busy(busy0), 2)}
                    pages[0].close()  # the baseline session: the soak runs with exactly `sessions`
                    t0 = time.monotonic()
                    ticks0 = _ticks(pages[1:])
                    runs0 = [c.snapshot() for c in counted]
                    cpu0, busy_s0 = cpu_seconds(pid), machine_busy()
                    warm = min(60.0, 0.2 * plan.soak)
                    status_start = proc_status(pid)
                    while (elapsed := time.monotonic() - t0) < plan.soak:
                        series.append((round(elapsed, 1), round(rss_mb(pid), 1)))
                        # a page wait, not time.sleep: Playwright hands ScriptRuns its frames only then
                        pages[1].wait_for_timeout(plan.sample_every * 1000)
                    refill.stop()
                    if trace:
                        traced = trace_report(tmp / "snaps", t0 + warm - app_t0)
                        print("\n".join(["[bench] figure 4 heap growth:", *traced]), file=sys.stderr)
                    ticks = [b - a for a, b in zip(ticks0, _ticks(pages[1:]), strict=True)]
                    script_runs = [(full - a[0], frag - a[1])
                                   for (full, frag), a in zip((c.snapshot() for c in counted), runs0,
                                                              strict=True)]
                    print(f"[bench] figure 4: (full, fragment) script runs in {plan.soak:.0f} s, first "
                          f"{len(counted)} sessions: {script_runs}; pages loaded in time: "
                          f"{sum(1 for r in reload_s if r is not None)}/{len(reload_s)}", file=sys.stderr)
                    series.append((round(time.monotonic() - t0, 1), round(rss_mb(pid), 1)))
                    status_end = proc_status(pid)
                    cpu_share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
                    busy_soak = machine_busy(busy_s0)
                    probed_lines = probe_lines(probe_file)
                    probed = probe_report(probed_lines, t0 + warm - app_t0)
                    if probed:
                        print(f"[bench] figure 4 probe (after warm-up, end, change): {probed}",
                              file=sys.stderr)
                    in_flight_end = ledger.in_flight()
                    runs_made = refill.created
                    finished = ledger.count_runs(RunFilter(states=(COMPLETED,)))
                finally:
                    browser.close()
            ledger.close()
        finally:
            app.stop()
            gw.stop()
    start_vals = [v for t, v in series if t >= warm][:3] or [series[0][1]]
    end_vals = [v for _, v in series[-3:]]
    start, end = median(start_vals) or 0.0, median(end_vals) or 0.0
    peak = max(v for _, v in series)
    notes = {"sessions": plan.sessions, "runs_in_flight_target": plan.sessions * plan.per_session,
             "soak_s": plan.soak, "run_seconds": plan.run_seconds, "warmup_s": warm,
             "rss_one_session_mb": round(base, 1), "rss_with_sessions_mb": round(with_sessions, 1),
             "runs_created": runs_made, "runs_completed": finished, "in_flight_at_end": in_flight_end,
             "peak_mb": peak, "reload_to_cards_s": reload_s, "during_reloads": reload_cpu,
             "sessions_loaded": sum(1 for r in reload_s if r is not None),
             "live_ticks_per_s_per_session": [round(t / plan.soak, 2) for t in ticks],
             "server_cpu_cores_during_soak": round(cpu_share, 2),
             "machine_busy_during_soak": round(busy_soak, 2),  # type: ignore[arg-type]
             "heap_growth": traced,
             "probe_warm_end_change": probed,  # MB, see bench/probe_server.py
             # t, rss, in_use, free_held, py_used (MB), sqlite (MB), threads: every probe sample
             "probe_series": [[line[k] for k in PROBE_SERIES_KEYS] for line in probed_lines],
             "proc_status_start_end": [status_start, status_end],  # kB / count
             # (full page runs, fragment runs) per minute of soak, for the first few sessions
             "script_runs_per_min": [(round(f * 60 / plan.soak, 1), round(g * 60 / plan.soak, 1))
                                     for f, g in script_runs],
             "series": series}
    return [
        Row("4", f"RSS per idle session ({plan.sessions})", per_session, base, "MB", "≤ 5 MB",
            per_session <= 5.0, baseline_name="server, 1 session", notes=notes),
        Row("4", f"RSS over {plan.soak:.0f} s soak", end, start, "MB", "≤ 1.05× (5 %)",
            end <= 1.05 * start, baseline_name=f"after {warm:.0f} s warm-up"),
    ]
