"""Compose's live ticks with runs in flight, before and after a change, on the same machine in one run.

Why: tick times move with the machine's load by more than a change's effect, so the two versions are
timed alternately, round after round. Each round runs `bench.fig2_pages.ticks_in_flight` (Compose over
100 finished runs and 3 in progress that nothing changes; every fragment with a timer rerun alone `reps`
times; script-thread CPU) in a fresh process inside each checkout, plus the bare-fragment baseline.
The "before" checkout needs this branch's bench/fig2_pages.py copied in (it holds `ticks_in_flight`).

    git archive <commit> | tar -x -C /tmp/before && cp bench/fig2_pages.py /tmp/before/bench/
    python bench/tick_ab.py --before /tmp/before [--reps 21] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CODE = ("import json; {pre}from bench.fig2_pages import ticks_in_flight, time_reruns, _BARE_FRAGMENT; "
         "from streamlit.testing.v1 import AppTest; from bench.common import median; "
         "t = ticks_in_flight({reps}); bare = {{}}; "
         "time_reruns(lambda: AppTest.from_string(_BARE_FRAGMENT), {reps}, ticks=bare); "
         "t['bare fragment'] = next(iter(bare.values())); "
         "print(json.dumps({{k: round(median(v) * 1000, 3) for k, v in t.items()}}))")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    legs = [("before", args.before, ""), ("after", ROOT, ""),
            # the after code with the shared change token off: every tick reads SQLite itself
            ("after, token read every tick", ROOT, "import lib.live_reads as lr; lr.TOKEN_AGE = 0.0; ")]
    for _ in range(args.rounds):
        for name, tree, pre in legs:
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, "-c", _CODE.format(pre=pre, reps=args.reps)], cwd=tree,
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
            out = proc.stdout.strip().splitlines()
            result = json.loads(out[-1]) if proc.returncode == 0 and out else {"error": proc.stderr[-500:]}
            print(f"{name} (load {load:.1f}): {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
