"""Durations in words, one style for every screen: "42 s", "3 min 05 s", "2 h 10 min", "1 d 1 h".

Why one module: History's table and the cards used to print the same run's time as "3 m 05 s" and
"3 min 05 s" side by side. `min` (not `m`) because a bare "m" reads as metres, and the queue estimate
already says "~1 min 40 s".
"""
from __future__ import annotations

import math


def format_seconds(seconds: float | None) -> str:
    """Rounded to the second, two units at most; "—" when there is nothing to show (None, NaN, inf)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {(s % 3600) // 60:02d} min"
    return f"{s // 86400} d {(s % 86400) // 3600} h"


def countdown(seconds: float) -> str:
    """Time left, floored to the minute (a countdown must never promise more than is left): "< 1 min",
    "42 min", "23 h 12 min"."""
    s = int(max(0.0, seconds))
    if s < 60:
        return "< 1 min"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
