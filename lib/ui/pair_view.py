"""Compare's view of one run (`?run=<id>`): the run beside its pair, std on the left, pro on the right.

Why not a new grid: "Open in compare" on a run that was made alone used to fill the grid form with std
and pro, so comparing meant paying for the run already made. Here the run is shown as it is, its pair
(lib.pairs) beside it when the ledger has one, and otherwise one priced button makes just the missing
half, through the same press memory as every other spending button (a double click is one run).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from lib import pairs, playground, presses
from lib.contract import MODE_LABELS, format_estimate
from lib.ui import card, press, state, triage_controls, who

if TYPE_CHECKING:
    from lib.ledger import Run
    from lib.services import Services

K = "pair_"
CARD_ACTIONS = ("download", "share", "snippet")


def make_action(run_id: str) -> str:
    """The press-memory action of "Make the … version" for one run."""
    return f"pair_of:{run_id}"


def press_make_pair(run_id: str) -> None:
    """A press of "Make the pro/std version" (callback): at most one new run per press."""
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None or run.unreadable:
        return
    target = pairs.pair_request(run.request)
    decision = press.decide(make_action(run_id), target.to_dict())
    what = f"{target.effective_mode} run"
    done = f"The {MODE_LABELS[target.effective_mode]} version is on its way; it appears beside this run."
    if decision.kind == presses.TOO_SOON:
        card.toast_outcome(None, decision, done, what)
        return
    outcome = playground.submit(services, target, run_id=decision.ids[0], parent_id=run.run_id,
                                label=target.effective_mode, source="compare", actor=who.current(services))
    if not outcome.ok:
        press.forget(make_action(run_id))
    card.toast_outcome(outcome, decision, done, what)


def _missing(services: Services, run: Run) -> None:
    """The empty half: what it would be, what it costs, one button."""
    target = pairs.pair_request(run.request)
    label = MODE_LABELS[target.effective_mode]
    with st.container(border=True, key=f"{K}missing"):
        st.markdown(f"**{label}**")
        try:
            cost = playground.estimate(services, target)
        except ValueError:
            st.caption("These settings cannot be sent as a new run.")
            return
        st.caption(f"No {label} run with these settings yet.")
        if not who.may_act(services, run):  # another user's run (sign-in): lib would refuse it too
            st.caption("Only its owner can make that version here; its share link's Re-run this config "
                       "makes a run of your own.")
            return
        st.button(f"Make the {label} version · {format_estimate(cost)}", key=f"{K}make_{run.run_id}",
                  icon=":material/add_circle:", on_click=press_make_pair, args=(run.run_id,),
                  help="One new run with the same prompt, frames, duration and aspect ratio in the other "
                       "mode; this run is not sent again.")


def render(services: Services, run_id: str) -> bool:
    """Draw the run and its pair; False (nothing drawn) when there is no such run."""
    run = services.ledger.get(run_id)
    if run is None or run.unreadable:
        return False
    st.subheader("This run beside its pair")
    st.caption("The same settings in std 720p and pro 1080p. Nothing here is sent again unless you press a "
               "priced button.")

    def body() -> None:
        current = services.ledger.get(run_id) or run
        pair = pairs.find_pair(services.ledger, current)
        by_mode = {current.request.effective_mode: current}
        if pair is not None:
            by_mode[pair.request.effective_mode] = pair
        cols = st.columns(2, gap="small")
        for col, mode in zip(cols, ("std", "pro"), strict=True):
            with col:
                shown = by_mode.get(mode)
                if shown is None:
                    _missing(services, current)
                else:
                    card.run_card(services, shown, key=f"{K}{mode}", actions=CARD_ACTIONS)

    first = pairs.find_pair(services.ledger, run)
    live = card.is_live(run) or (first is not None and card.is_live(first))
    ticking = live or services.ledger.in_flight() > 0
    with st.container(key=f"{K}view"):
        st.fragment(body, run_every=1.0 if ticking else None, key=f"{K}live")()
    triage_controls.pair_verdict(services, run)  # Which is better?, once both halves are archived
    return True
