"""Figure 3: seconds per clip of the local gateway's renderer against PyAV encoding the same frames alone.

The measuring code is bench/render_bench.py (written with the renderer): `measure` times `render_clip`
end to end and, interleaved with it, encodes the very same frames (synthesised beforehand and held in
memory) with the renderer's own encoder settings. This wrapper runs it for std/pro x 5/10/15 s and turns
each cell into a table row; the ratio is render_bench's median of per-pair ratios (the renderer's
overhead over the encoder floor), and its check that both outputs are byte-identical is kept in notes.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench import render_bench
from bench.common import Row

GOAL = render_bench.GOAL


def run(tiny: bool = False) -> list[Row]:
    repeat = 1 if tiny else 3
    cells = [("std", 5)] if tiny else [(m, d) for m in ("std", "pro") for d in (5, 10, 15)]
    with tempfile.TemporaryDirectory(prefix="bench_fig3_") as d:
        measured = render_bench.measure(cells, repeat, Path(d))
    return [Row("3", f"render {c.label}", c.render, c.encode, "s", f"≤ {GOAL}×", c.ratio <= GOAL,
                ratio=c.ratio, baseline_name="PyAV alone",
                notes={"repeat": c.runs, "cpu_ratio": round(c.cpu_ratio, 3), "same_bytes": c.same_bytes,
                       "mb": round(c.size / 2**20, 2), "video_s_per_s": round(c.duration / c.render, 2)})
            for c in measured]
