"""Ledger reads keyed on its change token, shared by every session of the process.

Why: every open page asks the ledger the same questions on every live tick (how many runs are in flight,
how much was spent), and the answers change only when the ledger does. The tick already reads the cheap
change token (`Ledger.changes()`); with it as the key, a page with nothing changed asks nothing else, and
N sessions ask once per change instead of N times a second. A plain dict under a lock: Streamlit's
st.cache_data would hash its arguments on every call (measured: a good part of a 2 ms tick).
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
# ledger -> {question: (token, answer)}; weak, so a ledger that is closed and dropped (tests start many)
# takes its answers with it and a new one at the same address never sees them
_memo: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


# A fragment tick's change token may be this old: one session's timers fire together (the frame's tick,
# the cards' watcher, each bar), and many sessions tick within the same second, so they share one read.
# Full runs always read afresh; this only delays what a tick notices, by at most this long.
TOKEN_AGE = 0.25
_tokens: weakref.WeakKeyDictionary[Any, tuple[float, Any]] = weakref.WeakKeyDictionary()


def token(ledger: Any) -> Any:
    """`ledger.changes()` for a fragment tick, read at most once per TOKEN_AGE for the whole process."""
    now = time.monotonic()
    with _lock:
        hit = _tokens.get(ledger)
    if hit is not None and now - hit[0] < TOKEN_AGE:
        return hit[1]
    value = ledger.changes()
    with _lock:
        _tokens[ledger] = (now, value)  # stamped before the read: never counted younger than it is
    return value


def _ask(ledger: Any, name: str, token: Any, read: Callable[[], Any]) -> Any:
    with _lock:
        hit = _memo.get(ledger, {}).get(name)
    if hit is not None and hit[0] == token:
        return hit[1]
    answer = read()  # outside the lock: a slow read must not hold up other sessions' hits
    with _lock:
        _memo.setdefault(ledger, {})[name] = (token, answer)
    return answer


def in_flight(ledger: Any, token: Any) -> int:
    """`ledger.in_flight()` as of change token `token` (read the token first: a write in between then
    shows as a new token on the next tick, never as a stale count under the new one)."""
    return int(_ask(ledger, "in_flight", token, ledger.in_flight))


def spend(ledger: Any, token: Any) -> float:
    """`ledger.spend()` (a SUM over every billed run: 31 ms at 100,000 runs) as of change token `token`."""
    return float(_ask(ledger, "spend", token, ledger.spend))


def run(ledger: Any, token: Any, run_id: str) -> Any:
    """`ledger.get(run_id)` as of change token `token`: a run card's bar ticks every second in every open
    session, and its run changes only when the ledger does. Keeps only the runs asked for under the
    latest token, so it never grows beyond the cards on screen."""
    with _lock:
        hit = _memo.get(ledger, {}).get("runs")
        if hit is not None and hit[0] == token and run_id in hit[1]:
            return hit[1][run_id]
    got = ledger.get(run_id)
    with _lock:
        per = _memo.setdefault(ledger, {})
        hit = per.get("runs")
        if hit is None or hit[0] != token:
            per["runs"] = hit = (token, {})
        hit[1][run_id] = got
    return got
