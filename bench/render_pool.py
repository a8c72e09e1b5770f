"""How many renders at once suit the local gateway: a burst of short clips through its RenderQueue.

Figure 6 sends 300 short runs at once; with one render thread their MP4s took ~20 minutes on this
machine. This times the very queue the gateway uses (lib.local_gateway.engine.RenderQueue, its real job:
`render_clip` to a file plus a poster) with 1, 2, 3 and 4 threads on the same burst, the pool sizes
interleaved round by round so that a change in the machine's load touches every size alike.
Reported per size: the median over rounds of the burst's wall seconds and clips per second, and the load.

    python -m bench.render_pool [--clips 12] [--rounds 2] [--sizes 1,2,3,4]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lib.local_gateway.engine import RenderQueue
from lib.local_gateway.render import render_clip


def _burst(out: Path, workers: int, clips: int) -> float:
    """Wall seconds for `clips` std 5 s 16:9 clips (every third with sound) through a pool of `workers`."""
    def job(task_id: str, stop: threading.Event) -> None:
        n = int(task_id)
        render_clip(out / f"{task_id}.mp4", prompt=f"a lighthouse in fog, take {n}", mode="std", duration=5,
                    aspect="16:9", poster_path=out / f"{task_id}.jpg", cancel=stop, audio=n % 3 == 0)

    queue = RenderQueue(job, workers)
    try:
        started = time.perf_counter()
        for n in range(clips):
            queue.enqueue(str(n))
        if not all(queue.wait(str(n), 600) for n in range(clips)):
            raise RuntimeError("a render did not finish in 600 s")
        seconds = time.perf_counter() - started
    finally:
        queue.stop()
    missing = [n for n in range(clips) if not (out / f"{n}.mp4").exists()]
    if missing:
        raise RuntimeError(f"renders left no file for {missing}")
    return seconds


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sizes", default="1,2,3,4")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    times: dict[int, list[float]] = {k: [] for k in sizes}
    print(f"load before: {_load()}")
    with tempfile.TemporaryDirectory(prefix="render_pool_") as d:
        for r in range(args.rounds):
            for k in (sizes if r % 2 == 0 else sizes[::-1]):
                out = Path(d) / f"r{r}-w{k}"
                out.mkdir()
                times[k].append(_burst(out, k, args.clips))
                print(f"round {r} workers {k}: {times[k][-1]:.1f} s (load {_load()})", flush=True)
    print(f"load after: {_load()}")
    print(f"| render threads | burst of {args.clips} clips (median s) | clips/s | vs 1 thread |")
    print("|---|---|---|---|")
    base = statistics.median(times[sizes[0]])
    for k in sizes:
        med = statistics.median(times[k])
        print(f"| {k} | {med:.1f} | {args.clips / med:.2f} | {base / med:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
