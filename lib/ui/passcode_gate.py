"""The passcode page every private page shows until this session has given the passcode.

Why a form: each press of Unlock is exactly one guess (a plain text box would be judged again on every
rerun), and clear_on_submit sends nothing typed back to the browser. The judging itself, with its limits,
waits and constant answer time, is lib/passcode.py; this module only draws it.
"""
from __future__ import annotations

import streamlit as st

from lib import passcode as guard_lib

UNLOCKED_KEY = "_passcode_ok"
INPUT_KEY = "passcode_input"
_VERDICT_KEY = "_passcode_verdict"


def client() -> str:
    """Who is guessing, as lib/passcode keys it (the connection's address)."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - no browser context (bare script run): one local client
        ip = None
    return guard_lib.client_key(ip)


def _on_unlock(passcode: str) -> None:
    ss = st.session_state
    guess = ss.get(INPUT_KEY) or ""
    if not guess:
        ss[_VERDICT_KEY] = "Type the passcode first."
        return
    verdict = guard_lib.guard_for(passcode).attempt(client(), guess)
    if verdict.ok:
        ss[UNLOCKED_KEY] = True
        ss.pop(_VERDICT_KEY, None)
    else:
        ss[_VERDICT_KEY] = verdict.message


def require(passcode: str | None, app_name: str) -> None:
    """Return when no passcode is set or this session gave it; otherwise draw the gate and stop."""
    ss = st.session_state
    if not passcode or ss.get(UNLOCKED_KEY):
        return
    st.title(app_name)
    with st.form("passcode_form", clear_on_submit=True, border=False):
        st.text_input("Passcode", type="password", key=INPUT_KEY,
                      help="This playground is shared privately; ask its owner for the passcode.")
        st.form_submit_button("Unlock", type="primary", icon=":material/lock_open:",
                              on_click=_on_unlock, args=(passcode,))
    message = ss.pop(_VERDICT_KEY, None)
    if message is None:
        wait, why = guard_lib.guard_for(passcode).wait_for(client())
        if wait > 0:
            message = guard_lib.lockout_message(wait, why)
    if message:
        st.error(message, icon=":material/lock:")
    st.caption("A shared passcode suits a small private demo. Deployments with many users should set up "
               "sign-in (see the README), not a passcode.")
    st.stop()
