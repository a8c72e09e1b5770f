"""This tab's press memory (lib.presses) kept in session state, with this server's window and ids.

Why one place: every spending button (Generate, Compare std vs pro, Submit grid, Re-run this grid,
Promote, Another take) must apply the same rule with the same window, and a card drawn on Compose and
on History must share one memory. Session state is per tab, so the rule is per tab; two tabs never
share run ids (each press makes its own random ids), and the ledger's idempotent insert covers a
repeat of one run id from anywhere.
"""
from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from lib import compare, presses, takes
from lib.ui import state, who

BOOK_KEY = "_presses"
log = logging.getLogger(__name__)


def _book() -> dict[str, presses.Press]:
    """This tab's book; call under presses.LOCK (two script threads of one tab may create it at once)."""
    return st.session_state.setdefault(BOOK_KEY, {})


def decide(action: str, inputs: Any, n_ids: int = 1) -> presses.Decision:
    """Record a press of `action` with `inputs`; its run ids (the same ones for a repeat in the window)."""
    services = state.services()
    ledger = services.ledger
    with presses.LOCK:
        decision = presses.decide(_book(), action, inputs, window=services.settings.press_window,
                                  new_ids=lambda: [ledger.new_id() for _ in range(n_ids)])
    # the action's kind only: run ids are share-link capabilities and stay out of logs
    log.info("press %s: %s (gap %s s)", action.split(":")[0], decision.kind,
             "n/a" if decision.gap is None else f"{decision.gap:.2f}")
    return decision


def forget(action: str) -> None:
    """The press wrote nothing: the next press of `action` is judged afresh."""
    with presses.LOCK:
        presses.forget(_book(), action)


def last(action: str) -> presses.Press | None:
    """This tab's latest press of `action`, if it is remembered."""
    with presses.LOCK:
        return _book().get(action)


def touch(action: str, ids: tuple[str, ...]) -> None:
    """The press with `ids` is written and drawn: its window starts again (lib.presses.touch)."""
    with presses.LOCK:
        presses.touch(_book(), action, ids)


NOTE_KEY = "_press_note"


def hand_over(text: str, *, about: str) -> None:
    """Words about a press for the page it leads to (e.g. "Already sent" above a grid); `about` names
    what they describe (a group id), so they stay while that is shown and vanish when it is not."""
    st.session_state[NOTE_KEY] = (about, text)


def note_for(about: str | None) -> str | None:
    """The handed-over words if they are about `about`."""
    note = st.session_state.get(NOTE_KEY)
    return note[1] if note and about and note[0] == about else None


def clear_note() -> None:
    st.session_state.pop(NOTE_KEY, None)


def submit_grid(action: str, plan: compare.GridPlan) -> compare.GridSubmit:
    """One press of a grid button (Submit grid, Re-run this grid): this tab's press memory gives the
    group and cell ids (the same ones for a repeat within the window), then the ledger writes the grid
    all or nothing. The words for a repeat or a new take wait for the grid's page (hand_over)."""
    inputs = takes.press_inputs(compare.spec_to_params(plan.spec), plan.takes)  # 2 takes ≠ 3 takes
    decision = decide(action, inputs, n_ids=1 + len(plan.submittable) * plan.takes)
    if decision.kind == presses.TOO_SOON:
        return compare.GridSubmit("", refused=presses.too_soon(decision))
    services = state.services()
    result = compare.submit_grid(services, plan, decision.ids[0], run_ids=decision.ids[1:],
                                 actor=who.current(services))
    touch(action, decision.ids)  # a grid of takes is slow to write: the window starts once it is
    clear_note()
    if not result.runs:
        forget(action)
    elif not result.created:
        hand_over(presses.already_sent(decision, "the grid below is the one it made"), about=result.group_id)
    elif decision.kind == presses.NEW_TAKE:
        hand_over(presses.new_take(decision, "grid"), about=result.group_id)
    return result
