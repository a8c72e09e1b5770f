"""Shared pieces of the benches: the result row, the table, statistics, RSS and the machine description.

Why one place: every figure is reported the same way (value, a baseline measured in the same run, their
ratio, the goal and whether it is met), so the runner can print one table and RESULTS.md can quote it.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The docs' fixed polling schedule (docs/api-contract.md §7.2): first look after 5 s, then every 10 s.
FIXED_FIRST = 5.0
FIXED_EVERY = 10.0
# The local gateway's clock at this speed takes 60 s (std 5 s) to 228 s (pro 15 s): the real gateway's
# documented "1-5 minutes". A bench's time factor F runs the gateway at REAL_SPEED * F.
REAL_SPEED = 0.25


@dataclass
class Row:
    """One line of the table. `ratio` is value/baseline; `met` compares against the goal (None: no goal)."""

    figure: str
    name: str
    value: float | None
    baseline: float | None
    unit: str
    goal: str
    met: bool | None
    ratio: float | None = None
    baseline_name: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline not in (None, 0):
            self.ratio = self.value / self.baseline  # type: ignore[operator]


def median(xs: Sequence[float]) -> float | None:
    return percentile(xs, 50)


def percentile(xs: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no data."""
    data = sorted(x for x in xs if x is not None and not math.isnan(x))
    if not data:
        return None
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if unit == "count":
        return f"{x:.0f}"
    ax = abs(x)
    text = f"{x:.3f}" if ax < 10 else f"{x:.1f}" if ax < 1000 else f"{x:,.0f}"
    return f"{text} {unit}".strip() if unit and unit != "×" else text


def table(rows: Sequence[Row]) -> str:
    """The one table the runner prints: figure, value, baseline, ratio, goal, met?"""
    head = ("figure", "value", "baseline", "ratio", "goal", "met?")
    lines = []
    for r in rows:
        base = _fmt(r.baseline, r.unit)
        if r.baseline_name:
            base = f"{base} ({r.baseline_name})"
        met = "—" if r.met is None else ("yes" if r.met else "NO")
        lines.append((f"{r.figure} {r.name}", _fmt(r.value, r.unit), base,
                      "—" if r.ratio is None else f"{r.ratio:.2f}×", r.goal, met))
    widths = [max(len(head[i]), *(len(line[i]) for line in lines)) if lines else len(head[i])
              for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB, from /proc (no psutil on the machines)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll `pred` until it is true or `timeout` seconds pass (bounded loops only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def machine() -> dict[str, str]:
    """What RESULTS.md records about the machine the numbers came from."""
    import av
    import streamlit

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    free = subprocess.run(["free", "-g"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "free -g": free,
        "python": platform.python_version(),
        "streamlit": streamlit.__version__,
        "av": av.__version__,
        "platform": platform.platform(),
    }


def dump_json(path: Path, rows: Sequence[Row], extra: dict[str, Any]) -> None:
    path.write_text(json.dumps({"rows": [asdict(r) for r in rows], **extra}, indent=1, default=str))
