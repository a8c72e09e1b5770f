"""One press, one charge: is this press of a spending button new, or the same press again?

Why a rule in time and not in widgets: a person who clicks Generate five times in two seconds means one
video, however the clicks fall against Streamlit's reruns (a click that lands after the previous rerun
began is a press on a fresh button). So each tab remembers its last press of each action (Generate, a
card's Promote, …) with a fingerprint of the inputs and the run ids it was given. A press that repeats
that fingerprint within the window of the previous one (sliding: every repeat restarts it) gets the same
run ids back, and the ledger's "same run_id twice is a no-op" turns it into nothing. The same inputs
after the window are a deliberate new take, and the caller says so.

One more rule, found with real clicks: a press makes a new card appear above the old ones, so the
rest of a quick double click lands on whatever slid under the mouse, which can be another run's spending
button. A press of a *different* button within GUARD seconds of the tab's last spending press is
therefore held (TOO_SOON): nothing is sent, the page says why, and pressing it again after that moment
sends it. No deliberate sequence of two different buttons is that fast. The same button with other
inputs is never held: only the person's own edits change a form's inputs.

The ids are remembered before anything is written: a rerun that interrupts the first press half-way
still maps the next click to the same ids. And decide() holds a lock: with Streamlit's fast reruns a
second click stops the running script and starts a new one on another thread at once, so two presses of
one tab can be decided at the same instant (seen in Chromium: two runs from clicks 6 ms apart).
Plain Python, no streamlit: the book is any mutable mapping (a tab's session state holds one).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_WINDOW = 3.0
MIN_WINDOW, MAX_WINDOW = 0.5, 60.0
KEPT = 256  # actions remembered per tab: far more buttons than any page shows at once

# Seconds after a spending press in which a press of another button is held (see above). Measured at the
# server, where a loaded machine was seen to spread clicks 300 ms apart to 1.25 s: hence 1.5, not 1.
GUARD = 1.5

NEW, SAME, NEW_TAKE, TOO_SOON = "new", "same", "new_take", "too_soon"

# One lock for every book in the process: a decision takes microseconds, and a caller that must also
# create the book (lib/ui/press.py, from session state) takes it around both (it is re-entrant).
LOCK = threading.RLock()


def fingerprint(action: str, inputs: Any) -> str:
    """A stable digest of an action and its inputs (dict key order and tuple/list do not matter)."""
    blob = json.dumps([action, inputs], sort_keys=True, default=str, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Press:
    """The last press of one action in one tab, and the run ids it was given."""

    action: str
    fingerprint: str
    ids: tuple[str, ...]
    first_at: float      # monotonic seconds of the press that made the ids
    last_at: float       # of its latest repeat: the window runs from here
    repeats: int = 0


@dataclass(frozen=True)
class Decision:
    """What a press is: NEW (first of these inputs), SAME (a repeat inside the window), NEW_TAKE (the same
    inputs after the window) or TOO_SOON (another button right after a press: held, nothing recorded)."""

    kind: str
    press: Press
    gap: float | None    # seconds since this action's previous press in this tab; None if there was none

    @property
    def ids(self) -> tuple[str, ...]:
        return self.press.ids

    @property
    def same(self) -> bool:
        return self.kind == SAME


def decide(
    book: MutableMapping[str, Press],
    action: str,
    inputs: Any,
    *,
    new_ids: Callable[[], Sequence[str]],
    window: float = DEFAULT_WINDOW,
    guard: float = GUARD,
    now: float | None = None,
) -> Decision:
    """Record a press of `action` with `inputs` in `book` and say whether it is new or the same press.

    `new_ids` is called only for a new press; its ids are kept with the press so that a repeat gets
    exactly them back. `now` is monotonic seconds (tests pass their own clock).
    """
    with LOCK:
        return _decide(book, action, inputs, new_ids=new_ids, window=window, guard=guard, now=now)


def _decide(
    book: MutableMapping[str, Press],
    action: str,
    inputs: Any,
    *,
    new_ids: Callable[[], Sequence[str]],
    window: float,
    guard: float,
    now: float | None,
) -> Decision:
    now = time.monotonic() if now is None else float(now)
    digest = fingerprint(action, inputs)
    last = book.get(action)
    gap = None if last is None else max(0.0, now - last.last_at)
    repeat = last is not None and last.fingerprint == digest and gap is not None and gap <= window
    latest = max(book.values(), key=lambda p: p.last_at, default=None)
    if not repeat and latest is not None and latest.action != action and 0 <= now - latest.last_at < guard:
        held = Press(action, digest, (), now, now)  # no ids: nothing can be sent with it, nothing recorded
        return Decision(TOO_SOON, held, now - latest.last_at)
    book.pop(action, None)  # re-inserted below: the book's order is least recently pressed first
    if repeat and last is not None:  # (repeat implies a last press; said twice for the type checker)
        press = replace(last, last_at=now, repeats=last.repeats + 1)
        kind = SAME
    else:
        ids = tuple(str(i) for i in new_ids())
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("a press needs distinct run ids")
        press = Press(action, digest, ids, now, now)
        kind = NEW_TAKE if last is not None and last.fingerprint == digest else NEW
    book[action] = press
    while len(book) > KEPT:
        del book[next(iter(book))]
    return Decision(kind, press, gap)


def forget(book: MutableMapping[str, Press], action: str) -> None:
    """The press wrote nothing (refused, invalid): a later press with these inputs is not a "new take"."""
    with LOCK:
        book.pop(action, None)


def touch(book: MutableMapping[str, Press], action: str, ids: Sequence[str], *,
          now: float | None = None) -> None:
    """The press with these `ids` has been written (and its page drawn): its window starts again now.

    Why: a press of several takes (or a grid) takes a while to write and draw on a loaded server, and a
    repeat click the browser sent at once may only be handled seconds later; counted from the press's
    start, that gap can pass the window and make a second set of runs. Counted from when its result
    was written, a repeat still within the window of *that* is the same press. Another press since
    (other ids) is left alone."""
    with LOCK:
        press = book.get(action)
        if press is not None and press.ids == tuple(ids):
            at = time.monotonic() if now is None else float(now)
            book[action] = replace(press, last_at=max(press.last_at, at))


def too_soon(decision: Decision) -> str:
    """Words for a held press: why nothing was sent, and that pressing again sends it."""
    return (f"Not sent: this press came {decision.gap or 0:.1f} s after your last press of another button, "
            "so it may have been meant for that one (the page was still moving). Press it again to send it.")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "just now"
    return f"{seconds:.1f} s ago" if seconds < 10 else f"{seconds:.0f} s ago"


def already_sent(decision: Decision, where: str = "see the card below") -> str:
    """Words for a repeat: nothing new was sent, and where the first press's result is."""
    return (f"Already sent — {where}. This press repeated your press of {_ago(decision.gap)} with the "
            "same settings, so nothing new was sent or charged.")


def new_take(decision: Decision, what: str = "run") -> str:
    """Words for the same inputs pressed again after the window: a second, deliberate run."""
    if decision.kind != NEW_TAKE:
        return f"New take: a new {what} with the same settings is on its way."
    return (f"New take: you sent these same settings {_ago(decision.gap)}, so this press made a second "
            f"{what} (a new take).")
