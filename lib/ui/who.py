"""Sign-in on the page: the sign-in screen, who is signed in, the sidebar line and the "Whole team" switch.

Why Streamlit's own st.login / st.user: the provider round trip, the signed session cookie and the
/oauth2callback route are Streamlit's (configured by the [auth] section, see lib/sign_in.py); this module
only reads st.user into an owners.Actor, which is all lib ever sees. Without sign-in configured nothing
here draws anything and every helper answers as before sign-in existed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from lib import money, owners, sign_in
from lib.ledger import Run, runs_table
from lib.owners import NOBODY, Actor
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.services import Services

SIGN_IN_KEY = "who_sign_in"
SIGN_OUT_KEY = "who_sign_out"


def current(services: Services) -> Actor:
    """The person using this session: NOBODY without sign-in configured or while signed out."""
    if not services.settings.sign_in:
        return NOBODY
    try:
        user = st.user
        if not user.is_logged_in:
            return NOBODY
    except Exception:  # noqa: BLE001 - no [auth] section reached Streamlit: treat as signed out
        return NOBODY
    return owners.actor_from_claims(user)


def require(services: Services, app_name: str) -> None:
    """Return when sign-in is off or this session is signed in; otherwise draw the sign-in screen and stop."""
    if not services.settings.sign_in or current(services).signed_in:
        return
    st.title(app_name)
    with st.container(key="who_gate", border=True):
        st.subheader("Sign in to continue", anchor=False)
        st.markdown("This playground is shared by a team. Sign in with your team account to make videos: "
                    "your runs and your spend are kept under your name, and you see your own runs first.")
        down = not _provider_up(_metadata_url())
        if down:
            st.warning("The sign-in service does not answer right now, so signing in cannot start. Try "
                       "again in a minute; if it stays like this, the playground's owner should check the "
                       "sign-in settings (PLAYGROUND_OIDC_METADATA_URL) and the provider.",
                       icon=":material/cloud_off:")
        st.button("Sign in", key=SIGN_IN_KEY, type="primary", icon=":material/login:", on_click=st.login,
                  disabled=down)
        st.caption("Signing in opens your organisation's sign-in page and brings you back here. Nothing is "
                   "sent or charged before you sign in.")
    st.caption("Holding a share link? It opens without signing in. To make your own run from it, sign in "
               "first, then open the link again and press Re-run this config.")
    st.stop()


def _metadata_url() -> str:
    try:
        return str(st.secrets["auth"]["server_metadata_url"])
    except Exception:  # noqa: BLE001 - no section reached Streamlit: nothing to ask
        return ""


@st.cache_data(ttl=15, show_spinner=False, max_entries=4)
def _provider_up(metadata_url: str) -> bool:
    """One look every 15 s per process at most, however many sign-in screens are open."""
    return bool(metadata_url) and sign_in.provider_answers(metadata_url)


def sidebar(services: Services) -> None:
    """"Signed in as …", the user's own spend against their cap, and Sign out."""
    actor = current(services)
    if not actor.signed_in:
        return
    with st.container(key="who_sidebar"):
        st.caption(escape_md(f"Signed in as {actor.name}"))
        cap = services.settings.user_budget_usd
        if cap and actor.owner:
            spent = owners.spend_of(services.ledger.engine, runs_table, actor.owner)
            words = f"Your spend ≈ {money.usd(spent)} of your {money.usd(cap)} (estimates)"
            st.progress(min(1.0, spent / cap), text=escape_md(words))
        st.button("Sign out", key=SIGN_OUT_KEY, icon=":material/logout:", on_click=st.logout)


def team_switch(services: Services, key: str, on_change: Any = None) -> bool:
    """The "Whole team" toggle (only with sign-in); True when the whole team's runs are to be listed."""
    if not services.settings.sign_in:
        return True
    return bool(st.toggle("Whole team", key=key, on_change=on_change,
                          help="Off: only your own runs. On: everyone's runs, each with its owner's name; "
                               "you can look at theirs and share them, and only act on your own."))


def owner_filter(services: Services, whole_team: bool) -> str | None:
    """RunFilter.owner for a list drawn now (None: everyone's)."""
    return owners.owner_filter(services.settings.sign_in, current(services), whole_team)


def may_act(services: Services, run: Run) -> bool:
    return owners.may_act(services.settings.sign_in, run, current(services))


def owner_badge(services: Services, run: Run) -> None:
    """Whose run this is, on a run that is not the viewer's own (sign-in only)."""
    if services.settings.sign_in and not owners.is_mine(run, current(services)):
        st.badge(escape_md(owners.owner_label(run)), color="violet", icon=":material/person:")
