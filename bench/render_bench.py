"""Local-gateway render speed against the encoder floor.

For each clip this times `render_clip` end to end (scene setup + synthesis + encode + mux + faststart) and
encoding the very same frames, generated beforehand and held in memory as separate frames, with PyAV alone
through the same `open_encoder` (encode + mux + faststart only). The ratio says how much the renderer adds
on top of what x264 needs anyway (goal: <= 1.3).

The machine may be busy, so the two are interleaved (alternating which goes first) and each cell reports
medians of N pairs: render and encode-only wall seconds, the median of the per-pair ratios (each pair ran
under nearly the same load), and the same ratio in process CPU seconds, which load disturbs much less.
"same bytes" checks that the baseline is fair: both runs must write byte-identical MP4s.

    python bench/render_bench.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib.local_gateway.render import Scene, open_encoder, render_clip  # noqa: E402

PROMPT = "Tokyo Shibuya crossing at night, neon lights reflected on wet ground, people walking with umbrellas"
GOAL = 1.3


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # process CPU seconds, all threads (x264's included)


@dataclass(frozen=True)
class Cell:
    mode: str
    duration: int
    render: float  # median wall seconds
    encode: float
    ratio: float  # median of per-pair wall ratios
    cpu_ratio: float  # median of per-pair CPU ratios
    same_bytes: bool
    size: int
    runs: int

    @property
    def label(self) -> str:
        return f"{self.mode} {self.duration:>2} s 16:9"


def _timed(fn: object) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def time_render(out: Path, mode: str, duration: int) -> Timing:
    """`render_clip` exactly as the gateway calls it (minus the poster)."""
    return _timed(lambda: render_clip(out, prompt=PROMPT, mode=mode, duration=duration, aspect="16:9"))


def pregenerate(mode: str, duration: int) -> list[av.VideoFrame]:
    """The clip's frames as separate frames in memory (the renderer reuses a few, so each is copied)."""
    scene = Scene(prompt=PROMPT, mode=mode, duration=duration, aspect="16:9")
    frames = []
    for frame in scene.frames():
        copy = av.VideoFrame(frame.width, frame.height, "yuv420p")
        for dst, src in zip(copy.planes, frame.planes, strict=True):
            assert dst.line_size == src.line_size
            dst.update(bytes(src))
        copy.pts, copy.time_base = frame.pts, Fraction(1, scene.fps)
        copy.colorspace, copy.color_range = frame.colorspace, frame.color_range
        frames.append(copy)
    return frames


def time_encode_only(out: Path, frames: list[av.VideoFrame], fps: int = 24) -> Timing:
    """Encode + mux + faststart of ready frames with the renderer's own encoder settings."""

    def encode() -> None:
        with open_encoder(out, frames[0].width, frames[0].height, fps) as (container, stream):
            for frame in frames:
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)

    return _timed(encode)


def measure(cells: list[tuple[str, int]], repeat: int, tmp: Path) -> list[Cell]:
    """Interleaved render / encode-only pairs per cell; medians as described in the module docstring."""
    rendered, baseline = tmp / "render.mp4", tmp / "encode.mp4"
    time_render(rendered, "std", 1)  # warm-up: imports, font loading, x264 init
    rows = []
    for mode, duration in cells:
        frames = pregenerate(mode, duration)
        pairs: list[tuple[Timing, Timing]] = []
        same = True
        for r in range(repeat):
            if r % 2 == 0:
                ren = time_render(rendered, mode, duration)
                enc = time_encode_only(baseline, frames)
            else:
                enc = time_encode_only(baseline, frames)
                ren = time_render(rendered, mode, duration)
            pairs.append((ren, enc))
            same = same and rendered.read_bytes() == baseline.read_bytes()
        del frames
        rows.append(
            Cell(
                mode=mode,
                duration=duration,
                render=statistics.median(p[0].wall for p in pairs),
                encode=statistics.median(p[1].wall for p in pairs),
                ratio=statistics.median(p[0].wall / p[1].wall for p in pairs),
                cpu_ratio=statistics.median(p[0].cpu / p[1].cpu for p in pairs),
                same_bytes=same,
                size=rendered.stat().st_size,
                runs=repeat,
            )
        )
    return rows


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="std 5 s only (used by the test suite)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved pairs per cell, medians reported")
    args = ap.parse_args(argv)
    repeat = max(1, args.repeat)
    cells = [("std", 5)] if args.quick else [(m, d) for m in ("std", "pro") for d in (5, 10, 15)]
    print(f"cpus {os.cpu_count()}, load average {_load()} (1/5/15 min) at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(cells, repeat, Path(tmp))
    head = f"{'clip':<14}{'render s':>10}{'encode-only s':>15}{'ratio':>8}{'cpu ratio':>11}"
    print(head + f"{'video s / s':>13}{'MB':>8}{'same bytes':>12}")
    for c in rows:
        print(
            f"{c.label:<14}{c.render:>10.2f}{c.encode:>15.2f}{c.ratio:>8.2f}{c.cpu_ratio:>11.2f}"
            f"{c.duration / c.render:>13.1f}{c.size / 2**20:>8.2f}{'yes' if c.same_bytes else 'NO':>12}"
        )
    worst = max(c.ratio for c in rows)
    print(
        f"worst ratio {worst:.2f} (goal <= {GOAL}); median of {repeat} interleaved pair(s) per cell; "
        f"load average {_load()} at end"
    )
    if not all(c.same_bytes for c in rows):
        print("render and encode-only outputs differ: the baseline is not encoding the same frames")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
