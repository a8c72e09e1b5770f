"""The task timeline: what a task reports at a given moment, derived from its creation time alone.

Deriving the state (instead of advancing it with timers) is what lets a restarted gateway answer for every
task it ever accepted. Each task keeps the speed it was accepted with, so changing the speed later never
makes its progress go backwards.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

QUEUE_SHARE = 0.15  # the first 15 % of the timeline is spent queued
FAIL_AT = 0.5  # a task told to fail does so half-way through
MAX_RUNNING_PROGRESS = 99


@dataclass(frozen=True)
class Timeline:
    total: float  # seconds from creation until the clock says completed
    queued_until: float

    @classmethod
    def for_task(cls, mode: str, duration: int, speed: float) -> Timeline:
        """At speed 1 a std 5 s clip takes 15 s; longer and pro clips take proportionally longer."""
        speed = max(float(speed), 1e-6)
        total = (3.0 + 12.0 * (duration / 5.0) * (1.5 if mode == "pro" else 1.0)) / speed
        return cls(total=total, queued_until=total * QUEUE_SHARE)


@dataclass(frozen=True)
class Reading:
    status: str  # queued | in_progress | completed | failed
    progress: int
    finished_at: float | None = None  # when it completed/failed (absolute Unix seconds)


def _jitter(task_id: str) -> tuple[float, float]:
    """Per-task wobble amplitude (<1 keeps it monotone) and frequency, stable across restarts."""
    h = hashlib.sha256(task_id.encode()).digest()
    return 0.25 + 0.5 * h[0] / 255, float(2 + h[1] % 3)


def running_progress(task_id: str, fraction: float) -> int:
    """Progress 1..99 for the running share of the clock: near-linear, monotone, deterministic wobble.

    g(f) = f + a*sin(2πkf)/(2πk) has g' = 1 + a*cos(2πkf) > 0 for a < 1, and g(0)=0, g(1)=1.
    """
    f = min(max(fraction, 0.0), 1.0)
    a, k = _jitter(task_id)
    g = f + a * math.sin(2 * math.pi * k * f) / (2 * math.pi * k)
    return max(1, min(MAX_RUNNING_PROGRESS, 1 + int(98 * g)))


def read(
    task_id: str, created_at: float, now: float, timeline: Timeline, *, rendered_at: float | None, fail: bool
) -> Reading:
    """The task's state at `now`. Completion also needs the MP4 (`rendered_at`); until then: ≤99."""
    elapsed = now - created_at
    if fail:
        fail_time = timeline.total * FAIL_AT
        if elapsed >= fail_time:
            return Reading("failed", 0, created_at + fail_time)
    if elapsed < timeline.queued_until:
        return Reading("queued", 0)
    if elapsed >= timeline.total and rendered_at is not None and not fail:
        return Reading("completed", 100, max(created_at + timeline.total, rendered_at))
    running = timeline.total - timeline.queued_until
    fraction = (elapsed - timeline.queued_until) / running if running > 0 else 1.0
    return Reading("in_progress", running_progress(task_id, fraction))
