"""How long a waiting run usually takes, measured from this ledger's finished runs of the same kind.

Why: while a task is queued the gateway reports 0 %, so a card showed "0 % · Elapsed 12 s" under an
empty bar and said nothing useful. The best honest guess is what runs of the same mode and duration
took here before: the median time from send to done over the latest finished ones ("usually ~40 s").
With none finished yet the card says so instead of inventing a number.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.durations import format_seconds

if TYPE_CHECKING:
    from lib.ledger import Ledger, Run

SAMPLE = 50        # the latest finished runs of one kind: recent enough to follow the gateway's mood
TTL = 15.0         # seconds a measured median is reused (cards tick every second; the median barely moves)


@dataclass(frozen=True)
class Typical:
    """Median seconds waiting to send and from send to done, over `runs` finished runs of one kind."""

    send_s: float
    finish_s: float
    runs: int

    @property
    def total_s(self) -> float:
        return self.send_s + self.finish_s


def measure(times: Sequence[tuple[float, float]]) -> Typical | None:
    """The medians of (waiting to send, send to done) pairs; None when there are none."""
    if not times:
        return None
    return Typical(statistics.median(t[0] for t in times), statistics.median(t[1] for t in times), len(times))


def about(seconds: float) -> str:
    """'~40 s', '~1 min 30 s', '~4 min': rounded as people say durations they only roughly know."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"~{max(1, round(seconds))} s"
    if seconds < 60:
        return f"~{round(seconds / 5) * 5} s"
    if seconds < 600:
        minutes, sec = divmod(round(seconds / 10) * 10, 60)
        return f"~{minutes} min" if sec == 0 else f"~{minutes} min {sec:02d} s"
    return f"~{round(seconds / 60)} min"


def words(typical: Typical | None, mode: str, duration: int, waited: float) -> str:
    """'usually ~40 s (median of 12 finished std 5 s runs) · waiting 6 s', or why there is no estimate."""
    kind = f"{mode} {duration} s"
    waiting = f"waiting {format_seconds(waited)}"
    if typical is None:
        return f"No finished {kind} run yet to estimate from · {waiting}"
    runs = f"{typical.runs} finished {kind} run{'s' if typical.runs != 1 else ''}"
    text = f"usually {about(typical.total_s)} (median of {runs}) · {waiting}"
    if waited > typical.total_s * 1.5 and waited - typical.total_s > 10:
        text += " · slower than usual"
    return text


_lock = threading.Lock()
_cache: dict[tuple[int, str, int], tuple[float, Typical | None]] = {}


def typical(ledger: Ledger, mode: str, duration: int, *, now: float | None = None) -> Typical | None:
    """The measured medians for one mode and duration, from the ledger (one bounded query per TTL)."""
    now = time.monotonic() if now is None else now
    key = (id(ledger), str(mode), int(duration))
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < TTL:
        return hit[1]
    value = measure(ledger.finish_times(mode, int(duration), limit=SAMPLE))
    with _lock:
        if len(_cache) > 256:  # ledgers of finished tests or reloaded services: never grows without bound
            _cache.clear()
        _cache[key] = (now, value)
    return value


def for_run(ledger: Ledger, run: Run, now: float | None = None) -> str:
    """The estimate line for one waiting run (mode and duration as sent, defaults applied)."""
    now = time.time() if now is None else now
    req = run.request
    mode, duration = req.effective_mode, int(req.effective_duration)
    # from the press, as the medians are (waiting to send + send to done): what the person has waited
    return words(typical(ledger, mode, duration), mode, duration, max(0.0, now - run.created_at))
