"""Local-gateway render speed against the encoder floor.

For each clip this times `render_clip` end to end (synthesis + encode + mux + faststart), then encodes the
very same frames, generated beforehand and held in memory, with PyAV alone (encode + mux + faststart only).
The ratio says how much the synthesis adds on top of what x264 needs anyway (goal: <= 1.3).

    python bench/render_bench.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.local_gateway.render import Scene, open_encoder, render_clip  # noqa: E402

PROMPT = "Tokyo Shibuya crossing at night, neon lights reflected on wet ground, people walking with umbrellas"


def time_render(out: Path, mode: str, duration: int) -> float:
    started = time.perf_counter()
    render_clip(out, prompt=PROMPT, mode=mode, duration=duration, aspect="16:9")
    return time.perf_counter() - started


def time_encode_only(out: Path, mode: str, duration: int) -> float:
    scene = Scene(prompt=PROMPT, mode=mode, duration=duration, aspect="16:9")
    frames = list(scene.frames())  # synthesis happens here, outside the timed part
    started = time.perf_counter()
    with open_encoder(out, scene.width, scene.height, scene.fps) as (container, stream):
        for frame in frames:
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    elapsed = time.perf_counter() - started
    del frames
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="std 5 s only (used by the test suite)")
    ap.add_argument(
        "--repeat", type=int, default=None, help="runs per cell, median reported (default 3, quick 1)"
    )
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    cells = [("std", 5)] if args.quick else [(m, d) for m in ("std", "pro") for d in (5, 10, 15)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        time_render(out, "std", 5)  # warm-up: imports, font loading, x264 init
        for mode, duration in cells:
            render = statistics.median(time_render(out, mode, duration) for _ in range(repeat))
            size = out.stat().st_size
            encode = statistics.median(time_encode_only(out, mode, duration) for _ in range(repeat))
            rows.append((mode, duration, render, encode, render / encode, duration / render, size))
    print(f"{'clip':<14}{'render s':>10}{'encode-only s':>15}{'ratio':>8}{'video s / s':>13}{'MB':>8}")
    for mode, duration, render, encode, ratio, rate, size in rows:
        label = f"{mode} {duration:>2} s 16:9"
        print(f"{label:<14}{render:>10.2f}{encode:>15.2f}{ratio:>8.2f}{rate:>13.1f}{size / 2**20:>8.2f}")
    worst = max(r[4] for r in rows)
    print(f"worst ratio {worst:.2f} (goal <= 1.3); median of {repeat} run(s) per cell")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
