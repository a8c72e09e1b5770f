"""Process-wide rate limiter for gateway calls.

ToAPIs counts submits (5/s) and queries (50/s) per user, and rejected calls cost us a 429 round trip and
a Retry-After wait, so every thread in the process goes through one limiter before it sends. A sliding
window log (not a token bucket) is used because the gateway's limit is "n per second" with no burst
credit: a log guarantees that no window of the configured length ever holds more than n sends.

This limiter is per process. When several processes use one API key (a team's web processes and
standalone workers), lib/shared_limit.py keeps the same log in the ledger's database with the same
interface; lib/services.py picks one per PLAYGROUND_RATE_LIMIT.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

log = logging.getLogger(__name__)

# The submit window is 1.1 s rather than 1.0 s as a margin; the guarantee itself comes from slot(): a call
# made through it counts from the moment its answer arrives (no later than the gateway received it), so
# the gateway can never see n + 1 calls inside one of its own windows, however late a request travels.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {"submit": (5, 1.1), "query": (50, 1.0)}

# Upper bound on one sleep inside acquire(): a pause() set by another thread is then seen promptly.
_MAX_NAP = 0.25


class Limiter(Protocol):
    """What a gateway client needs from a limiter: this module's per-process one or lib.shared_limit's."""

    def acquire(self, bucket: str, timeout: float | None = None) -> bool: ...

    def slot(self, bucket: str) -> AbstractContextManager[None]: ...

    def pause(self, seconds: float, bucket: str | None = None) -> None: ...

    def paused_for(self, bucket: str) -> float: ...


class RateLimiter:
    """At most n acquisitions per bucket in any window; pause() blocks a bucket (or all) until a time.

    Buckets not named in `limits` have no window limit but still honour pause(): uploads can go through
    the same limiter and wait out a global Retry-After without being counted against submit/query.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[int, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        chosen = dict(DEFAULT_LIMITS if limits is None else limits)
        for bucket, (count, window) in chosen.items():
            if count < 1 or window <= 0:
                raise ValueError(f"limit for {bucket!r} must be at least 1 call per positive window")
        self._limits = chosen
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: dict[str, deque[float]] = {bucket: deque() for bucket in chosen}
        self._in_flight: dict[str, int] = dict.fromkeys(chosen, 0)
        self._paused_until: dict[str, float] = {}
        self._all_paused_until = float("-inf")

    def __repr__(self) -> str:
        return f"RateLimiter(limits={self._limits!r})"

    @property
    def limits(self) -> dict[str, tuple[int, float]]:
        return dict(self._limits)

    def _ready_at(self, bucket: str, now: float) -> float:
        """Earliest time this bucket may be acquired; must hold the lock."""
        ready = max(self._all_paused_until, self._paused_until.get(bucket, float("-inf")))
        limit = self._limits.get(bucket)
        if limit is not None:
            count, window = limit
            stamps = self._log[bucket]
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            in_flight = self._in_flight[bucket]  # calls still on the wire count as "now, and later"
            if in_flight >= count:
                ready = float("inf")
            elif len(stamps) + in_flight >= count:
                ready = max(ready, stamps[-(count - in_flight)] + window)
        return ready

    def acquire(self, bucket: str, timeout: float | None = None) -> bool:
        """Block until a call in `bucket` is allowed and record it; False if `timeout` s pass first."""
        return self._acquire(bucket, timeout, in_flight=False)

    def _acquire(self, bucket: str, timeout: float | None, *, in_flight: bool) -> bool:
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                now = self._clock()
                ready = self._ready_at(bucket, now)
                if ready <= now:
                    if bucket in self._log:
                        if in_flight:
                            self._in_flight[bucket] += 1
                        else:
                            self._log[bucket].append(now)
                    return True
            if deadline is not None and ready > deadline:
                # Waiting cannot help: the slot opens only after the caller's deadline.
                if deadline > now:
                    self._sleep(deadline - now)
                return False
            self._sleep(min(ready - now, _MAX_NAP))

    @contextmanager
    def slot(self, bucket: str) -> Iterator[None]:
        """Acquire, then count the call from when it finished (answer, error or timeout), not started.

        The gateway counts a request when it arrives, which is somewhere between our start and our
        answer; stamping the answer time makes the window hold on the gateway's clock too.
        """
        self._acquire(bucket, None, in_flight=True)
        counted = bucket in self._log
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self._in_flight[bucket] -= 1
                    stamps, done = self._log[bucket], self._clock()
                    # Answers can come back out of order: keep the log sorted.
                    stamps.insert(bisect.bisect_right(stamps, done), done)

    def pause(self, seconds: float, bucket: str | None = None) -> None:
        """No acquisition in `bucket` (all buckets when None) before now + seconds; never shortens a pause."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if bucket is None:
                self._all_paused_until = max(self._all_paused_until, until)
            else:
                self._paused_until[bucket] = max(self._paused_until.get(bucket, float("-inf")), until)
        log.info("rate limiter paused %s for %.2f s", bucket or "all buckets", seconds)

    def paused_for(self, bucket: str) -> float:
        """Seconds until `bucket` is no longer paused (0 when it is not): for status displays."""
        with self._lock:
            now = self._clock()
            until = max(self._all_paused_until, self._paused_until.get(bucket, float("-inf")))
            return max(0.0, until - now)
