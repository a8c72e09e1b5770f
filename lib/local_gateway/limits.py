"""Server-side rate limits per API key, like ToAPIs' default group (docs/api-contract.md §7.1).

A sliding one-second window per (key, bucket). Requests answered 429 do not consume allowance, as the
docs say; business failures (a 400 after the limiter) do.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

LIMITS = {"submit": 5, "query": 50}
CATEGORY = {"submit": "async_submit", "query": "async_query"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # Unix seconds when the oldest call leaves the window
    retry_after: float  # seconds; 0 when allowed

    def headers(self, bucket: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
            "X-RateLimit-Category": CATEGORY.get(bucket, bucket),
        }


class SlidingWindow:
    def __init__(
        self,
        limits: dict[str, int] | None = None,
        window: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = dict(limits or LIMITS)
        self.window = window
        self.clock = clock
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, bucket: str) -> Decision:
        """Take one call from the allowance if there is room."""
        limit = self.limits[bucket]
        now = self.clock()
        with self._lock:
            calls = self._calls.setdefault((key, bucket), deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) >= limit:
                reset = calls[0] + self.window
                return Decision(False, limit, 0, reset, max(reset - now, 0.0))
            calls.append(now)
            return Decision(True, limit, limit - len(calls), calls[0] + self.window, 0.0)

    def peek(self, key: str, bucket: str) -> Decision:
        """The current state without taking a call (for injected 429s)."""
        limit = self.limits[bucket]
        now = self.clock()
        with self._lock:
            calls = [c for c in self._calls.get((key, bucket), ()) if c > now - self.window]
        reset = calls[0] + self.window if calls else now + self.window
        return Decision(True, limit, max(limit - len(calls), 0), reset, 0.0)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
