"""The task timeline: what a task reports at a given moment, derived from its creation time alone.

Deriving the state (instead of advancing it with timers) is what lets a restarted gateway answer for every
task it ever accepted. Each task keeps the speed it was accepted with, so changing the speed later never
makes its progress go backwards.

Two progress models (README "Clock"): FAST (the default, short and near-linear, for tests) and REALISTIC
(the real gateway's minutes: a random queue, uneven progress with jumps, occasional stalls), whose shape
is drawn from a seeded RNG stored with the task, so a reading is the same on every call and after a
restart, and a seeded gateway gives the same sequence of shapes on every run.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_right
from dataclasses import dataclass

QUEUE_SHARE = 0.15  # the first 15 % of the timeline is spent queued
FAIL_AT = 0.5  # a task told to fail does so half-way through
MAX_RUNNING_PROGRESS = 99

FAST = "fast"
REALISTIC = "realistic"
PROGRESS_MODELS = (FAST, REALISTIC)

# REALISTIC at speed 1 (seconds; every time is divided by the task's speed). The nominal total is linear in
# the clip's length: std 5 s ≈ 80 s … std 15 s ≈ 130 s, pro 5 s ≈ 100 s … pro 15 s ≈ 190 s.
R_BASE = 55.0            # seconds of a task that do not depend on the clip's length
R_PER_SECOND = {"std": 5.0, "pro": 9.0}  # seconds per clip second
R_TOTAL_SIGMA = 0.12     # each task's total is the nominal one × lognormal(0, σ) (≈ ±12 %)
R_QUEUE_MEAN = 12.0      # queued for an exponential time of this mean…
R_QUEUE_MIN = 2.0        # …at least this…
R_QUEUE_SHARE_MAX = 0.4  # …and at most this share of the total
R_SEGMENTS = (5, 10)     # the running part is cut into this many segments (inclusive range); the last one
#                          always moves at a steady rate (a stall or a jump is never what ends a task)
R_RATE_SPREAD = 0.5      # a moving segment's speed is × uniform(1 − s, 1 + s) of the average
R_STALL_P = 0.1         # a segment is a stall (progress flat) with this probability…
R_STALL_WEIGHT = (0.5, 1.5)  # …lasting this many average segments
R_JUMP_P = 0.1          # a segment is a jump (progress rises at once) with this probability…
R_JUMP_WEIGHT = (0.4, 1.2)   # …of this many average segments' worth of points
R_TAIL_P = 0.3           # a task ends with a hold near the top with this probability:
R_TAIL = (95, 0.04, 0.12)  # from this progress to 100, for this share of the running time (uniform)


@dataclass(frozen=True)
class Timeline:
    total: float  # seconds from creation until the clock says completed
    queued_until: float
    # REALISTIC: (seconds after creation, progress) knots, piecewise linear; two knots at one time are a
    # jump. None: FAST's near-linear curve.
    knots: tuple[tuple[float, float], ...] | None = None

    @classmethod
    def for_task(cls, mode: str, duration: int, speed: float, progress: str | None = None) -> Timeline:
        """FAST (progress None or "fast"): at speed 1 a std 5 s clip takes 15 s; longer and pro clips take
        proportionally longer. REALISTIC ("realistic:<seed>"): the shape drawn from that seed."""
        speed = max(float(speed), 1e-6)
        if progress and progress.startswith(REALISTIC + ":"):
            return realistic(mode, duration, speed, progress.split(":", 1)[1])
        total = (3.0 + 12.0 * (duration / 5.0) * (1.5 if mode == "pro" else 1.0)) / speed
        return cls(total=total, queued_until=total * QUEUE_SHARE)


def nominal_realistic(mode: str, duration: int) -> float:
    """REALISTIC's typical total at speed 1, before the per-task draw."""
    return R_BASE + R_PER_SECOND.get(mode, R_PER_SECOND["std"]) * duration


def realistic(mode: str, duration: int, speed: float, seed: str) -> Timeline:
    """One task's REALISTIC timeline, a pure function of its settings and its seed."""
    rng = random.Random(f"kling-progress:{seed}:{mode}:{duration}")
    total = nominal_realistic(mode, duration) * rng.lognormvariate(0.0, R_TOTAL_SIGMA)
    queue = min(max(R_QUEUE_MIN, rng.expovariate(1.0 / R_QUEUE_MEAN)), R_QUEUE_SHARE_MAX * total)
    running = total - queue
    tail = rng.random() < R_TAIL_P
    tail_from = R_TAIL[0] if tail else MAX_RUNNING_PROGRESS
    tail_time = running * rng.uniform(R_TAIL[1], R_TAIL[2]) if tail else 0.0
    # segments: (time weight, points weight)
    segs: list[tuple[float, float]] = []
    for _ in range(rng.randint(*R_SEGMENTS)):
        roll = rng.random()
        if roll < R_STALL_P:
            segs.append((rng.uniform(*R_STALL_WEIGHT), 0.0))
        elif roll < R_STALL_P + R_JUMP_P:
            segs.append((0.0, rng.uniform(*R_JUMP_WEIGHT)))
        else:
            segs.append((1.0, rng.uniform(1 - R_RATE_SPREAD, 1 + R_RATE_SPREAD)))
    if segs[-1][0] == 0.0 or segs[-1][1] == 0.0:  # the last stretch moves: a video nears its end, then ends
        segs.append((1.0, rng.uniform(1 - R_RATE_SPREAD, 1 + R_RATE_SPREAD)))
    t_sum, p_sum = sum(t for t, _ in segs), sum(p for _, p in segs)
    moving = running - tail_time
    t, p = queue, 1.0
    knots = [(t, p)]
    for tw, pw in segs:
        t += moving * tw / t_sum
        p += (tail_from - 1.0) * pw / p_sum
        knots.append((t, p))
    # The curve reaches 100 at the finish (so the last point, 99, shows for the last 1 % only, as progress
    # reported as a whole number would), clipped to 99 until the clock says completed.
    knots[-1] = (queue + moving, float(tail_from) if tail else 100.0)
    if tail:
        knots.append((total, 100.0))
    return Timeline(total=total / speed, queued_until=queue / speed,
                    knots=tuple((kt / speed, kp) for kt, kp in knots))


def knot_progress(knots: tuple[tuple[float, float], ...], elapsed: float) -> int:
    """Progress 1..99 at `elapsed` s on a piecewise-linear curve (a jump is two knots at one time)."""
    times = [k[0] for k in knots]
    i = bisect_right(times, elapsed)
    if i <= 0:
        value = knots[0][1]
    elif i >= len(knots):
        value = knots[-1][1]
    else:
        (t0, p0), (t1, p1) = knots[i - 1], knots[i]
        value = p0 if t1 <= t0 else p0 + (p1 - p0) * (elapsed - t0) / (t1 - t0)
    return max(1, min(MAX_RUNNING_PROGRESS, int(value)))


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
    if timeline.knots is not None:
        return Reading("in_progress", knot_progress(timeline.knots, elapsed))
    running = timeline.total - timeline.queued_until
    fraction = (elapsed - timeline.queued_until) / running if running > 0 else 1.0
    return Reading("in_progress", running_progress(task_id, fraction))
