"""Where a page's rerun time goes: cProfile of the script thread, plus the ledger calls timed one by one.

Used to explain figure 2 (see bench/RESULTS.md). cProfile is enabled inside the ScriptRunner's own
thread (AppTest runs the page there), so only the page's work is counted, not the test harness.

    python bench/profile_page.py [--runs 100000] [--page compose|history] [--reps 5] [--top 30]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fig2_pages import app_env, fill  # noqa: E402
from lib.ledger import Ledger, RunFilter  # noqa: E402


def ledger_calls(url: str, reps: int = 20) -> dict[str, float]:
    """Median ms of each ledger call the frame, Compose and History make on a rerun."""
    ledger = Ledger(url)
    calls = {
        "spend()": ledger.spend,
        "in_flight()": ledger.in_flight,
        "changes()": ledger.changes,
        "list_runs(limit=8)": lambda: ledger.list_runs(limit=8),
        "count_runs()": lambda: ledger.count_runs(RunFilter()),
        "list_runs(limit=50)": lambda: ledger.list_runs(RunFilter(), limit=50),
    }
    out = {}
    try:
        for name, fn in calls.items():
            fn()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1000)
            out[name] = round(statistics.median(times), 3)
    finally:
        ledger.close()
    return out


def profile_page(url: str, gateway_url: str, tmp: Path, page: str, reps: int) -> pstats.Stats:
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    from streamlit.testing.v1 import AppTest

    prof = cProfile.Profile()
    original = ScriptRunner._run_script
    active = {"on": False}

    def wrapped(self, *a, **k):  # type: ignore[no-untyped-def]
        if not active["on"]:
            return original(self, *a, **k)
        prof.enable()
        try:
            return original(self, *a, **k)
        finally:
            prof.disable()

    ScriptRunner._run_script = wrapped  # type: ignore[method-assign]
    try:
        with app_env(tmp, url, gateway_url):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.run()
            if page == "history":
                at.switch_page("pages/history.py")
            at.run()
            active["on"] = True
            for _ in range(reps):
                at.run()
            active["on"] = False
    finally:
        ScriptRunner._run_script = original  # type: ignore[method-assign]
    return pstats.Stats(prof)


def main(argv: list[str] | None = None) -> int:
    from lib.local_gateway import LocalGateway

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--page", choices=("compose", "history"), default="compose")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp / 'ledger.db'}"
        fill(url, args.runs)
        print(f"ledger calls at {args.runs:,} runs (median ms):", ledger_calls(url))
        gw = LocalGateway(tmp / "gateway", port=0).start()
        try:
            stats = profile_page(url, gw.url, tmp, args.page, args.reps)
        finally:
            gw.stop()
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(args.top)
    print(f"{args.page} page, {args.reps} reruns, {args.runs:,} runs in the ledger")
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
