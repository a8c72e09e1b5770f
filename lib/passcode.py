"""The shared passcode (PLAYGROUND_PASSCODE), made slow to guess.

Why one guard per server process, keyed by the client's address: Streamlit sessions are free to open, so a
counter kept in a session's state resets with every reconnect; this one is module-level, behind a lock,
and shared by every session of the process. Three limits apply, all before a guess is even compared:
- per client: FREE_FAILURES wrong guesses, then a wait that doubles with every further wrong one
  (BASE_DELAY, 2×, … up to MAX_DELAY); a right guess during a wait is not looked at, so it waits too;
- per process: at most GLOBAL_PER_MINUTE guesses a minute from everyone together, so an attacker who
  rotates addresses still gets no more than that (and while they do, everyone waits: the price of a
  shared passcode; real multi-user deployments need sign-in, a later issue);
- per guess: compared in constant time (hmac.compare_digest on SHA-256 digests, so the length does not
  leak either), and every compared guess is answered after the same ANSWER_TIME, right or wrong.
An attempt is counted as wrong *before* it is compared and forgiven once it proves right, so parallel
guesses cannot slip through while the first is still being checked.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

MIN_LENGTH = 12          # checked at start-up (lib/config.py): a short shared secret falls to guessing
FREE_FAILURES = 3        # wrong guesses a client may make before waits start (typos happen)
BASE_DELAY = 2.0         # the first wait, in seconds; each further wrong guess doubles it
MAX_DELAY = 900.0        # a client never waits more than 15 minutes for its next try
GLOBAL_PER_MINUTE = 30   # guesses compared per minute, all clients together
ANSWER_TIME = 0.3        # every compared guess is answered this long after it arrived
FORGET_AFTER = 3600.0    # a client's wrong guesses are forgotten after an hour without one
MAX_CLIENTS = 10_000     # clients remembered at once (the oldest are dropped; the global limit remains)

LOCAL_CLIENT = "local"   # Streamlit gives no address for loopback (or proxied) connections: one client


@dataclass(frozen=True)
class Verdict:
    """The answer to one guess: whether it opened, how long before the next one, and what to say."""

    ok: bool
    wait: float
    message: str | None = None


@dataclass
class _Client:
    failures: int = 0
    next_allowed: float = 0.0
    last_failure: float = 0.0


def delay_after(failures: int) -> float:
    """Seconds to wait after `failures` wrong guesses in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY, BASE_DELAY * 2 ** min(failures - FREE_FAILURES, 32))


def wait_words(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} min"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class PasscodeGuard:
    """Checks guesses for one passcode; thread-safe; `clock`/`sleep` are seams for tests."""

    def __init__(self, passcode: str, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, answer_time: float = ANSWER_TIME,
                 global_per_minute: int = GLOBAL_PER_MINUTE) -> None:
        self._secret = _digest(passcode)
        self._clock = clock
        self._sleep = sleep
        self._answer_time = answer_time
        self._global_per_minute = global_per_minute
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._recent: deque[float] = deque()  # when the guesses of the last minute were compared
        self.compared = 0  # guesses compared so far (what an attacker actually got to try)

    # ------------------------------------------------------------------ waits
    def _global_wait(self, now: float) -> float:
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()
        if len(self._recent) < self._global_per_minute:
            return 0.0
        return self._recent[0] + 60.0 - now

    def _prune(self, now: float) -> None:
        while self._clients:
            key, oldest = next(iter(self._clients.items()))
            stale = now - oldest.last_failure > FORGET_AFTER and now >= oldest.next_allowed
            if not stale and len(self._clients) <= MAX_CLIENTS:
                return
            del self._clients[key]

    def wait_for(self, client: str) -> tuple[float, str]:
        """(seconds before `client` may guess, why) — 0 when it may guess now."""
        now = self._clock()
        with self._lock:
            return self._wait(client, now)

    def _wait(self, client: str, now: float) -> tuple[float, str]:
        state = self._clients.get(client)
        own = max(0.0, state.next_allowed - now) if state else 0.0
        shared = self._global_wait(now)
        if own >= shared:
            return own, "client"
        return shared, "global"

    # ------------------------------------------------------------------ guesses
    def attempt(self, client: str, guess: str) -> Verdict:
        """One guess from `client`. Refused unseen while a wait applies; otherwise compared and answered
        ANSWER_TIME after it arrived, whatever the outcome."""
        start = self._clock()
        with self._lock:
            self._prune(start)
            wait, why = self._wait(client, start)
            if wait > 0:
                return Verdict(False, wait, lockout_message(wait, why))
            # Counted as wrong before it is compared: a parallel guess sees this failure already.
            state = self._clients.pop(client, None) or _Client()
            state.failures += 1
            state.last_failure = start
            state.next_allowed = start + delay_after(state.failures)
            self._clients[client] = state
            self._recent.append(start)
            self.compared += 1
            failures, next_allowed = state.failures, state.next_allowed
        ok = hmac.compare_digest(_digest(guess), self._secret)
        if ok:
            with self._lock:
                self._clients.pop(client, None)
        self._pad(start)
        if ok:
            return Verdict(True, 0.0)
        return Verdict(False, max(0.0, next_allowed - start), wrong_message(failures, next_allowed - start))

    def _pad(self, start: float) -> None:
        left = start + self._answer_time - self._clock()
        if left > 0:
            self._sleep(left)


def lockout_message(wait: float, why: str) -> str:
    if why == "global":
        return (f"Too many passcode attempts on this server in the last minute. Try again in "
                f"{wait_words(wait)}.")
    return (f"Too many wrong passcodes from your address. Try again in {wait_words(wait)}; "
            "every further wrong one doubles the wait.")


def wrong_message(failures: int, wait: float) -> str:
    left = FREE_FAILURES - failures
    if wait > 0:
        return f"That passcode is not right. Wait {wait_words(wait)} before the next try."
    if left <= 1:
        return "That passcode is not right. After one more wrong try you will have to wait."
    return "That passcode is not right."


_guards: dict[bytes, PasscodeGuard] = {}
_guards_lock = threading.Lock()


def guard_for(passcode: str) -> PasscodeGuard:
    """The process-wide guard of this passcode (every session of the server shares it)."""
    key = _digest(passcode)
    with _guards_lock:
        guard = _guards.get(key)
        if guard is None:
            guard = _guards[key] = PasscodeGuard(passcode)
        return guard


def reset() -> None:
    """Forget every guard (tests; a server never forgets)."""
    with _guards_lock:
        _guards.clear()


def client_key(ip_address: object) -> str:
    """Who is guessing: the connection's address, or one shared key when Streamlit has none.

    Streamlit reports no address for loopback connections (a local script, or a proxy on this machine
    that does not forward one); they are all treated as one client, so reconnecting cannot reset a count.
    Anything that is not an address string (AppTest's stand-in runtime) counts as that one client too.
    """
    return ip_address if isinstance(ip_address, str) and ip_address else LOCAL_CLIENT


def check_length(passcode: str | None) -> str | None:
    """Why this passcode may not be used (words naming PLAYGROUND_PASSCODE), or None if it may."""
    if passcode is None or len(passcode) >= MIN_LENGTH:
        return None
    return (f"PLAYGROUND_PASSCODE is {len(passcode)} characters long; it must have at least {MIN_LENGTH} so "
            "that it cannot be guessed. Set a longer one (e.g. four random words) and restart the app, or "
            "unset it to run without a passcode.")
