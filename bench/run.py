"""Run the benchmarks; print one table: figure, value, baseline (measured in the same run), ratio, goal, met?

    python bench/run.py                 # the full suite (~35 min on 2 cores; figure 4 soaks for 10 min)
    python bench/run.py --tiny          # every figure on a tiny size (~1 min): checks that they run
    python bench/run.py --only 2,3      # some figures
    python bench/run.py --soak-seconds 120 --json out.json

Figures: 1 noticing a finished run (adaptive worker vs the docs' fixed schedule; ledger → browser),
2 page rerun time vs ledger size (vs an empty page), 3 local-gateway rendering (vs PyAV alone),
4 server memory per browser session and over a soak, 5 the gateway's 429s under our own load,
"capacity": sessions one web process holds with 10 runs in flight (p95 click → updated element ≤ 200 ms).
These are benchmarks, not tests: a missed goal is reported (exit 0); a bench that crashes exits 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Row, dump_json, machine, table  # noqa: E402

FIGURES = {
    "1": "bench.fig1_notice",
    "2": "bench.fig2_pages",
    "3": "bench.fig3_render",
    "4": "bench.fig4_memory",
    "5": "bench.fig5_load",
    "capacity": "bench.capacity",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke check that every bench runs")
    ap.add_argument("--only", default="", help="comma-separated figure numbers, e.g. 1,3")
    ap.add_argument("--soak-seconds", type=float, default=None,
                    help="figure 4 soak length (default 600, or 8 with --tiny)")
    ap.add_argument("--trace", action="store_true",
                    help="figure 4: run the server under tracemalloc and print where its heap grew")
    ap.add_argument("--time-scale", type=float, default=None,
                    help="figure 1: compress the gateway's realistic clock this many times (default 1: real "
                         "durations; 12 with --tiny)")
    ap.add_argument("--json", type=Path, default=None, help="also write every row (with notes) as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="log lib/ messages to stderr")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wanted = [f.strip() for f in args.only.split(",") if f.strip()] or list(FIGURES)
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; pick from {', '.join(FIGURES)}")
    rows: list[Row] = []
    timings: dict[str, float] = {}
    loads: dict[str, tuple[float, float]] = {}  # 1-min load average before/after: other work skews timings
    failed: list[str] = []
    for fig in wanted:
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        print(f"[bench] figure {fig} … (load average {load_before:.1f})", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(FIGURES[fig])
            kwargs = {"tiny": args.tiny}
            if fig == "4" and args.soak_seconds is not None:
                kwargs["soak_seconds"] = args.soak_seconds
            if fig == "1" and args.time_scale is not None:
                kwargs["scale"] = args.time_scale
            if fig == "4" and args.trace:
                kwargs["trace"] = True
            got = module.run(**kwargs)
        except Exception:
            traceback.print_exc()
            failed.append(fig)
            got = [Row(fig, "FAILED (see the traceback above)", None, None, "", "", False)]
        rows += got
        timings[fig] = round(time.monotonic() - started, 1)
        loads[fig] = (round(load_before, 1), round(os.getloadavg()[0], 1))
        print(f"[bench] figure {fig} took {timings[fig]} s", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\nseconds per figure: {timings}" + (" (tiny sizes)" if args.tiny else ""))
    print(f"load average (1 min) before/after each figure on {os.cpu_count()} cores: {loads}")
    if args.json:
        dump_json(args.json, rows, {"machine": machine(), "tiny": args.tiny, "seconds": timings,
                                    "load": loads})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
