"""The frame every page draws first: page config, passcode gate, sidebar, and the live fragment.

Why one function: with Streamlit's `pages/` folder and no st.navigation, any page can be the first one a
server sees (a share link), so each page must set itself up completely. The live fragment is the only
thing that notices runs changing: it reads the ledger's cheap change token once a second while anything
is in flight, toasts finished runs on whatever page is open, and asks for one full rerun per state
change. It never talks to the gateway; the worker does.
"""
from __future__ import annotations

import contextvars
import hmac
import logging
import time
from pathlib import Path
from typing import Any

import streamlit as st

from lib.ledger import ACTIVE, COMPLETED, FAILED, UNKNOWN, RunFilter
from lib.ui import state
from lib.ui.text import escape_md, shorten

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "Kling v3 playground"
PAGES: list[tuple[str, str, str]] = [
    ("app.py", "Compose", ":material/edit_note:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
    ("pages/history.py", "History", ":material/history:"),
]
LIVE_EVERY = 1.0
_STATES_KEY = "_live_states"
_VERSION_KEY = "_live_version"
_TOASTS_KEY = "_live_toasts"
_UNLOCKED_KEY = "_passcode_ok"
_full_run: contextvars.ContextVar[bool] = contextvars.ContextVar("frame_full_run", default=False)


def render(title: str, *, icon: str = ":material/movie:", layout: str = "wide", public: bool = False) -> Any:
    """Set up the page and return the process-wide Services. Call it first on every page.

    `public=True` is for the share view: anyone holding a link may see it, so it skips the passcode and
    shows nothing about the owner's account (balance, spend) or other people's runs (toasts).
    """
    st.set_page_config(page_title=f"{title} · {APP_NAME}", page_icon=icon, layout=layout)
    services = state.services()
    if not public:
        _gate(services.settings.passcode)
    pending = state.take_navigation()
    if pending is not None:
        page, params = pending
        st.switch_page(page, query_params=params or None)
    for text, toast_icon in st.session_state.pop(_TOASTS_KEY, []):
        st.toast(text, icon=toast_icon)
    with st.sidebar:
        _sidebar(services, public=public)
    return services


def _gate(passcode: str | None) -> None:
    """A shared passcode keeps a public deployment from spending the key's money (PLAYGROUND_PASSCODE)."""
    if not passcode or st.session_state.get(_UNLOCKED_KEY):
        return
    st.title(APP_NAME)
    entered = st.text_input("Passcode", type="password", key="passcode_input",
                            help="This playground is shared privately; ask its owner for the passcode.")
    if entered:
        if hmac.compare_digest(entered.encode(), passcode.encode()):
            st.session_state[_UNLOCKED_KEY] = True
            st.session_state.pop("passcode_input", None)
            st.rerun()
        st.error("That passcode is not right.")
    st.stop()


def _page_exists(page: str) -> bool:
    return (ROOT / page).is_file()


@st.cache_data(ttl=60, show_spinner=False)
def _balance(cache_token: str) -> float | None:
    """Remaining balance in USD, looked up at most once a minute per process (it is an HTTP call)."""
    del cache_token  # distinguishes gateways; the lookup itself uses the live services
    try:
        balance = state.services().balance()
    except Exception as exc:  # noqa: BLE001 - the sidebar must render even when the gateway is down
        log.info("balance lookup failed: %s", exc.__class__.__name__)
        return None
    return None if balance is None else balance.remain_usd


def _sidebar(services: Any, *, public: bool) -> None:
    settings = services.settings
    st.markdown(f"### {APP_NAME}")
    with st.container(key="frame_nav"):
        for page, label, page_icon in PAGES:
            if _page_exists(page):
                st.page_link(page, label=label, icon=page_icon)
    st.divider()
    with st.container(key="frame_gateway"):
        if settings.uses_local_gateway:
            st.markdown(":green-badge[:material/science: Local gateway]")
            st.caption("No API key is set, so runs go to the built-in local gateway: videos are "
                       "synthetic and nothing is billed. Set TOAPIS_API_KEY to use ToAPIs.")
        else:
            st.markdown(":orange-badge[:material/payments: Real gateway — billed]")
            st.caption(f"Runs go to {settings.base_url} and are billed to your ToAPIs account.")
        remain = None if public else _balance(settings.base_url or "embedded")
        if remain is not None:
            st.caption(f"Balance: ${remain:,.2f}")
    if public:
        st.caption("You are viewing a shared link: read-only, no account details are shown.")
    else:
        _spend(services)
    in_flight = services.ledger.in_flight()
    token = _full_run.set(True)
    try:
        st.fragment(_live, run_every=LIVE_EVERY if in_flight else None)(public)
    finally:
        _full_run.reset(token)


@st.cache_data(max_entries=16, show_spinner=False)
def _spent(ledger_id: int, version: tuple) -> float:
    """The ledger's estimated spend, summed once per ledger change rather than on every rerun: it is a
    SUM over every billed run (31 ms at 100,000 runs), while version() is one tiny read."""
    del ledger_id, version  # cache keys only
    return state.services().ledger.spend()


def _spend(services: Any) -> None:
    settings = services.settings
    with st.container(key="frame_spend"):
        spent = _spent(id(services.ledger), services.ledger.version())
        budget = settings.budget_usd
        if budget:
            st.progress(min(1.0, spent / budget),
                        text=escape_md(f"Spent ≈ ${spent:,.2f} of the ${budget:,.2f} budget (estimates)"))
        else:
            st.caption(f"Spent ≈ ${spent:,.2f} so far (estimate; no budget set)")


def _watch(ledger: Any, previous: dict[str, str]) -> dict[str, str]:
    """Current state of every active run plus the runs we were already watching."""
    current = {r.run_id: r.state for r in ledger.list_runs(RunFilter(states=tuple(sorted(ACTIVE))),
                                                           limit=100)}
    for run_id in previous.keys() - current.keys():
        run = ledger.get(run_id)
        if run is not None:
            current[run_id] = run.state
    return current


def _finished_toast(run: Any) -> tuple[str, str]:
    short = escape_md(shorten(run.request.prompt or "", 40))
    if run.state == COMPLETED:
        return f"Video ready: {short}", ":material/check_circle:"
    if run.state == FAILED:
        return f"Run failed (not billed): {short}", ":material/error:"
    return f"Run outcome unknown: {short}", ":material/help:"


def _live(public: bool = False) -> None:
    """One tick: cheap change token; on a change, toast finished runs and rerun the page once.

    On a public page the in-flight count and toasts are left out: they would describe other people's runs.
    """
    services = state.services()
    ledger = services.ledger
    in_flight = ledger.in_flight()
    if not public:
        with st.container(key="frame_live"):
            if in_flight:
                st.caption(f":material/progress_activity: {in_flight} run{'s' if in_flight != 1 else ''} "
                           f"in flight · updated {time.strftime('%H:%M:%S')}")
            else:
                st.caption("No runs in flight")
    ss = st.session_state
    version = ledger.version()
    if ss.get(_VERSION_KEY) == version:
        return
    ss[_VERSION_KEY] = version
    previous: dict[str, str] | None = ss.get(_STATES_KEY)
    current = _watch(ledger, previous or {})
    ss[_STATES_KEY] = {rid: s for rid, s in current.items() if s in ACTIVE}
    if previous is None:
        return  # first look in this session: nothing has changed yet from its point of view
    toasts = []
    for run_id, old in ({} if public else previous).items():
        new = current.get(run_id, old)
        if new != old and new in (COMPLETED, FAILED, UNKNOWN):
            run = ledger.get(run_id)
            if run is not None:
                toasts.append(_finished_toast(run))
    changed = any(current.get(rid) != s for rid, s in previous.items()) or bool(
        current.keys() - previous.keys()
    )
    if _full_run.get():
        for text, toast_icon in toasts:
            st.toast(text, icon=toast_icon)
        return
    if changed:
        ss[_TOASTS_KEY] = ss.get(_TOASTS_KEY, []) + toasts
        st.rerun()
