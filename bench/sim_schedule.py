"""The poll planner (lib/schedule.py) against the local gateway's REALISTIC clock, simulated: no waiting.

Why: figure 1 at real durations takes about 6 minutes of wall time per try; this replays the same
decisions (the worker's `next_look` with its `Calibration`, the gateway's `clock.read`) on a virtual clock
in well under a second, so the planner can be tuned offline and a unit test can hold it to figure 1's
goals. What it leaves out: request latency and a render that is late (both measured by figure 1).

    python bench/sim_schedule.py [--tasks 40] [--window 30] [--seeds 5] [--first-seed 1] [--history 0]
    (figure 1's shape: --window 90 --history 20)
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib import schedule  # noqa: E402
from lib.local_gateway import clock  # noqa: E402

MIX = [(m, d) for d in (5, 10, 15) for m in ("std", "pro")]
FIXED_FIRST, FIXED_EVERY = 5.0, 10.0
LATENCY = 0.03  # seconds between the planned look and the answer (a local request)


@dataclass(frozen=True)
class SimResult:
    lags: list[float]
    gets: list[int]
    fixed_lags: list[float]
    fixed_gets: list[int]

    @property
    def median(self) -> float:
        return statistics.median(self.lags)

    @property
    def p95(self) -> float:
        data = sorted(self.lags)
        k = (len(data) - 1) * 0.95
        lo, hi = math.floor(k), math.ceil(k)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)

    @property
    def gets_ratio(self) -> float:
        return (sum(self.gets) / len(self.gets)) / (sum(self.fixed_gets) / len(self.fixed_gets))


def fixed(created: float, finish: float) -> tuple[float, int]:
    """The docs' schedule: first look at 5 s, then every 10 s."""
    t, n = created + FIXED_FIRST, 1
    while t < finish:
        t += FIXED_EVERY
        n += 1
    return t - finish, n


def warm(cal: schedule.Calibration, per_kind: int, seed: int, speed: float = 1.0) -> None:
    """What a worker learns from the ledger's finished runs before it starts (`per_kind` of each kind, of
    other seeds than the simulated ones): their totals, as the ledger recorded them."""
    for mode, duration in MIX:
        for k in range(per_kind):
            tl = clock.Timeline.for_task(mode, duration, speed, f"{clock.REALISTIC}:warm{seed}-{k}")
            cal.add(schedule.Observation(mode, duration, tl.total + 0.5, None, True))


def simulate(tasks: int = 40, window: float = 30.0, seed: int = 1, speed: float = 1.0,
             history: int = 0) -> SimResult:
    """`tasks` runs of mixed kinds arriving evenly over `window` s, watched by one worker's planner
    (which knows `history` finished runs of each kind from the ledger, see `warm`)."""
    cal = schedule.Calibration()
    if history:
        warm(cal, history, seed, speed)
    timelines = []
    heap: list[tuple[float, int, int]] = []
    samples: list[list[tuple[float, int]]] = []
    for i in range(tasks):
        mode, duration = MIX[i % len(MIX)]
        created = i * window / tasks
        tl = clock.Timeline.for_task(mode, duration, speed, f"{clock.REALISTIC}:{seed}-{i}")
        timelines.append((created, tl, mode, duration))
        samples.append([(created, 0)])
        nxt = schedule.next_look(samples[i], created, mode=mode, duration=duration,
                                 prior=cal.prior(mode, duration), first_look=FIXED_FIRST / speed)
        heapq.heappush(heap, (nxt, i, 0))
    lags, gets, f_lags, f_gets = [0.0] * tasks, [0] * tasks, [0.0] * tasks, [0] * tasks
    seq = itertools.count()
    while heap:
        at, i, _ = heapq.heappop(heap)
        now = at + LATENCY
        created, tl, mode, duration = timelines[i]
        gets[i] += 1
        reading = clock.read("sim", created, now, tl, rendered_at=created, fail=False)
        if reading.status == "completed":
            finish = created + tl.total
            lags[i] = now - finish
            total = float(int(finish) - int(created))  # the API's whole-second times
            cal.add(schedule.observe(samples[i], now, mode, duration, gateway_total=total))
            f_lags[i], f_gets[i] = fixed(created, finish)
            continue
        samples[i].append((now, reading.progress))
        nxt = schedule.next_look(samples[i], now, mode=mode, duration=duration,
                                 prior=cal.prior(mode, duration), first_look=FIXED_FIRST / speed)
        heapq.heappush(heap, (nxt, i, next(seq)))
    return SimResult(lags, gets, f_lags, f_gets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--history", type=int, default=0, help="finished runs of each kind known beforehand")
    args = ap.parse_args(argv)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = simulate(args.tasks, args.window, seed, history=args.history)
        runs.append(r)
        print(f"seed {seed}: lag median {r.median:.2f} s p95 {r.p95:.2f} s; GETs/task "
              f"{sum(r.gets) / len(r.gets):.2f} vs fixed {sum(r.fixed_gets) / len(r.fixed_gets):.2f} "
              f"({r.gets_ratio:.2f}×); fixed lag median {statistics.median(r.fixed_lags):.2f} s")
    pooled = SimResult([x for r in runs for x in r.lags], [x for r in runs for x in r.gets],
                       [x for r in runs for x in r.fixed_lags], [x for r in runs for x in r.fixed_gets])
    over = sum(r.p95 > 3.0 for r in runs)
    print(f"pooled over {len(runs)} seeds ({len(pooled.lags)} tasks): lag median {pooled.median:.2f} s, "
          f"p95 {pooled.p95:.2f} s, GETs {pooled.gets_ratio:.3f}× the fixed schedule; figures with a p95 "
          f"over 3 s: {over} of {len(runs)} (worst {max(r.p95 for r in runs):.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
