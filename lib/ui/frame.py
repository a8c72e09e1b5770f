"""The frame every page draws first: page config, passcode gate, sidebar, and the live fragment.

Why one function: with Streamlit's `pages/` folder and no st.navigation, any page can be the first one a
server sees (a share link), so each page must set itself up completely. The live fragment is the only
thing that notices runs changing: it reads the ledger's cheap change token every second while anything
is in flight (every IDLE_EVERY seconds otherwise, so a page notices runs started elsewhere), keeps the
in-flight count and the spend current, and toasts finished runs on whatever page is open. It never
talks to the gateway; the worker does.

Why it rarely reruns the whole page: a full rerun per state change of *any* run made every open session
redraw its whole page several times a second once many runs were in flight (the soak in
bench/RESULTS.md). A full rerun now happens only when this page needs one: a run it draws outside a
fragment changed (`follow`), a run started while the page showed nothing in flight, or the last run in
flight ended. Run cards and grid cells refresh themselves in their own fragments.
"""
from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

import streamlit as st

from lib import live_reads, money
from lib.ledger import ACTIVE, COMPLETED, FAILED, UNKNOWN, Run
from lib.ui import last_resort, page_script, passcode_gate, setup_page, state, who, widget_gc
from lib.ui.card import is_live
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.ledger import Ledger
    from lib.services import Services

log = logging.getLogger(__name__)

APP_NAME = "Kling v3 playground"
PAGES: list[tuple[str, str, str]] = [
    ("app.py", "Compose", ":material/edit_note:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
    ("pages/history.py", "History", ":material/history:"),
    ("pages/presets.py", "Presets", ":material/bookmarks:"),
]
LIVE_EVERY = 1.0
IDLE_EVERY = 5.0
_STATES_KEY = "_live_states"
_FOLLOW_KEY = "_live_follow"  # {run_id: signature} of the runs this page draws outside a fragment
_FOLLOW_NEW_KEY = "_live_follow_new"  # the page lists runs as they start (History's first page)
_BUSY_KEY = "_live_busy"  # whether the last full run saw runs in flight (it set the fragment timers)
_VERSION_KEY = "_live_version"
_TOASTS_KEY = "_live_toasts"
_full_run: contextvars.ContextVar[bool] = contextvars.ContextVar("frame_full_run", default=False)


def render(title: str, *, icon: str = ":material/movie:", layout: Literal["centered", "wide"] = "wide",
           public: bool = False) -> Services:
    """Set up the page and return the process-wide Services. Call it first on every page.

    `public=True` is for the share view: anyone holding a link may see it, so it skips the passcode and
    shows nothing about the owner's account (balance, spend) or other people's runs (toasts).
    """
    st.set_page_config(page_title=f"{title} · {APP_NAME}", page_icon=icon, layout=layout)
    # --- before anything else: words, never a traceback (lib/ui/last_resort.py, lib/ui/setup_page.py)
    last_resort.install()
    services = setup_page.services_or_stop(public=public)  # a bad setting or ledger: its page, then stop
    # ---
    if not public:
        _gate(services.settings.passcode)
        who.require(services, APP_NAME)  # sign-in (OIDC), when configured: lib/ui/who.py
    pending = state.take_navigation()
    if pending is not None:
        page, params = pending
        st.switch_page(page, query_params=params or None)
    for text, toast_icon in st.session_state.pop(_TOASTS_KEY, []):
        st.toast(text, icon=toast_icon)
    st.session_state[_FOLLOW_KEY], st.session_state[_FOLLOW_NEW_KEY] = {}, False
    with st.sidebar:
        _sidebar(services, public=public)
    page_script.style(page_script.POPOVER_COPY_CSS)
    return services


def _gate(passcode: str | None) -> None:
    """A shared passcode keeps a public deployment from spending the key's money (PLAYGROUND_PASSCODE);
    the guessing limits live in lib/passcode.py, the page in passcode_gate."""
    passcode_gate.require(passcode, APP_NAME)


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


def _sidebar(services: Services, *, public: bool) -> None:
    settings = services.settings
    st.markdown(f"### {APP_NAME}")
    with st.container(key="frame_nav"):
        for page, label, page_icon in PAGES:
            st.page_link(page, label=label, icon=page_icon)
    if not public:
        who.sidebar(services)
    st.divider()
    with st.container(key="frame_gateway"):
        if settings.uses_local_gateway:
            st.markdown(":green-badge[:material/science: Local gateway]")
            st.caption("No API key is set, so runs go to the built-in local gateway: videos are "
                       "synthetic and nothing is billed. Set TOAPIS_API_KEY to use ToAPIs.")
        elif public:  # a share link's viewer learns nothing about the owner's gateway or account
            st.markdown(":orange-badge[:material/payments: Real gateway]")
        else:
            st.markdown(":orange-badge[:material/payments: Real gateway — billed]")
            st.caption(f"Runs go to {settings.base_url} and are billed to your ToAPIs account.")
        remain = None if public else _balance(settings.base_url or "embedded")
        if remain is not None:
            st.caption(f"Balance: {money.usd(remain)}")
    if public:
        st.caption("You are viewing a shared link: read-only, no account details are shown.")
    in_flight = services.ledger.in_flight()
    st.session_state[_BUSY_KEY] = in_flight > 0
    token = _full_run.set(True)
    try:
        st.fragment(_live, run_every=LIVE_EVERY if in_flight else IDLE_EVERY)(public, services)
    finally:
        _full_run.reset(token)


def follow(runs: Iterable[Run], *, new_runs: bool = False) -> None:
    """Rerun this page when one of `runs` (drawn outside any fragment) changes, or with `new_runs`
    when a run starts. Call it during the page's full run; each full run starts with nothing followed."""
    followed = st.session_state.setdefault(_FOLLOW_KEY, {})
    followed.update({r.run_id: signature(r) for r in runs if r is not None and is_live(r)})
    if new_runs:
        st.session_state[_FOLLOW_NEW_KEY] = True


def signature(run: Run) -> tuple[str, bool, bool]:
    """What a drawn run looks like: its state, whether its video is in, whether archiving gave up."""
    return run.state, bool(run.video_path), bool(run.archive_failed)


def _spend(services: Services, version: tuple) -> None:
    settings = services.settings
    with st.container(key="frame_spend"):
        spent = live_reads.spend(services.ledger, version)  # summed once per ledger change
        budget = settings.budget_usd
        if budget:
            st.progress(min(1.0, spent / budget),
                        text=escape_md(f"Spent ≈ {money.usd(spent)} of the {money.usd(budget)} budget "
                                       "(estimates)"))
        else:
            st.caption(f"Spent ≈ {money.usd(spent)} so far (estimate; no budget set)")


TOASTS_PER_TICK = 2  # more finished runs than this in one tick get one summary toast per outcome
_OUTCOMES = {COMPLETED: ("Video ready", "videos ready", ":material/check_circle:"),
             FAILED: ("Run failed (not billed)", "runs failed (not billed)", ":material/error:"),
             UNKNOWN: ("Run outcome unknown", "runs with an unknown outcome", ":material/help:")}


def finished_toasts(runs: list[Run]) -> list[tuple[str, str]]:
    """(text, icon) toasts for runs that finished since the last tick.

    One toast per run while few finish; beyond TOASTS_PER_TICK, one per outcome ("5 videos ready:
    …"), so a grid or a busy batch does not bury the page under a stack of toasts."""
    def outcome(run: Run) -> str:
        return run.state if run.state in _OUTCOMES else UNKNOWN

    groups: list[list[Run]] = [[run] for run in runs]
    if len(runs) > TOASTS_PER_TICK:
        by_outcome: dict[str, list[Run]] = {}
        for run in runs:
            by_outcome.setdefault(outcome(run), []).append(run)
        groups = list(by_outcome.values())
    out = []
    for group in groups:
        first = group[0]
        one, many, icon = _OUTCOMES[outcome(first)]
        short = escape_md(_name(first))
        if len(group) > 1:
            out.append((f"{len(group)} {many}: {short} and {len(group) - 1} more", icon))
        elif outcome(first) == COMPLETED:
            out.append((f"{one}: {short}", icon))
        else:  # a failure always says why, not just which run
            out.append((f"{one}: {short} — {escape_md(shorten(_reason(first), 160))}", icon))
    return out


def _name(run: Run) -> str:
    """The run as a toast names it: its prompt, else its task id (a recovered task has no prompt)."""
    prompt = shorten(run.request.prompt or "", 40)
    task_id = getattr(run, "task_id", None)
    return prompt or (f"task {shorten(task_id, 40)}" if task_id else "a run")


def _reason(run: Run) -> str:
    """Why a run did not end with a video, in the words its card shows (lib.playground.explain)."""
    from lib import playground

    try:
        return playground.explain(run)
    except Exception:  # noqa: BLE001 - a toast must never fail the tick; the card still shows the error
        return "see its card for the reason"


def _live(public: bool = False, services: Services | None = None) -> None:
    """One tick: in-flight count and spend, then the cheap change token; on a change, toast finished
    runs and rerun the whole page only if `_page_needs_rerun`.

    On a public page the in-flight count, spend and toasts are left out: they would describe the owner's
    account and other people's runs.
    """
    services = services or state.services()  # the full run passes the process's Services along
    ledger = services.ledger
    ss = st.session_state
    widget_gc.prune()  # cards that left the page: Streamlit alone would keep their buttons forever
    # before in_flight: a change in between then shows as a new version; a tick shares the process's
    # latest read (lib/live_reads.py), a full run reads afresh
    version = ledger.changes() if _full_run.get() else live_reads.token(ledger)
    in_flight = live_reads.in_flight(ledger, version)  # read again only when the ledger changed
    if not public:
        with st.container(key="frame_live"):
            if in_flight:
                st.caption(f":material/progress_activity: {in_flight} run{'s' if in_flight != 1 else ''} "
                           f"in flight · updated {time.strftime('%H:%M:%S')}")
                stalled = services.no_worker_notice()  # only with PLAYGROUND_WORKER=off (lib/heartbeat.py)
                if stalled:
                    st.warning(stalled, icon=":material/hourglass_empty:")
            else:
                st.caption("No runs in flight")
        _spend(services, version)
    if ss.get(_VERSION_KEY) == version:
        return
    # In a full run, the timers were set from an in_flight read made just before this one; if a run
    # started or ended in between, forget the version so that the next tick looks again and reruns.
    in_step = not _full_run.get() or (in_flight > 0) == ss.get(_BUSY_KEY, False)
    ss[_VERSION_KEY] = version if in_step else None
    previous: dict[str, str] | None = ss.get(_STATES_KEY)
    # every run in flight, plus the ones this session was watching (they may have finished since)
    current = ledger.states((previous or {}).keys())
    ss[_STATES_KEY] = {rid: s for rid, s in current.items() if s in ACTIVE}
    if previous is None:
        return  # first look in this session: nothing has changed yet from its point of view
    # `previous` holds only runs in flight, so one that is now finished changed since the last look
    finished = [] if public else [rid for rid in previous if current.get(rid) in _OUTCOMES]
    runs = {r.run_id: r for r in ledger.get_many(finished)} if finished else {}
    actor = who.current(services)  # with sign-in, only the viewer's own runs are toasted
    toasts = finished_toasts([runs[rid] for rid in finished
                              if rid in runs and (not actor.signed_in or runs[rid].owner == actor.owner)])
    started = bool(current.keys() - previous.keys())
    if not _full_run.get() and _page_needs_rerun(ledger, in_flight, started=started):
        ss[_TOASTS_KEY] = ss.get(_TOASTS_KEY, []) + toasts
        st.rerun()
    for text, toast_icon in toasts:
        st.toast(text, icon=toast_icon)


def _page_needs_rerun(ledger: Ledger, in_flight: int, *, started: bool) -> bool:
    """Whether what the page drew in its last full run is out of date (see the module docstring)."""
    ss = st.session_state
    followed: dict[str, tuple] = ss.get(_FOLLOW_KEY) or {}
    now = {r.run_id: signature(r) for r in ledger.get_many(followed)} if followed else {}
    return needs_full_run(busy_then=ss.get(_BUSY_KEY, False), busy_now=in_flight > 0, started=started,
                          follow_new=bool(ss.get(_FOLLOW_NEW_KEY)), followed=followed, now=now)


def needs_full_run(*, busy_then: bool, busy_now: bool, started: bool, follow_new: bool,
                   followed: dict[str, tuple], now: dict[str, tuple]) -> bool:
    """The rule, apart from Streamlit: rerun when the timers the page set (fast while anything is in
    flight) no longer fit, when a run started and the page lists new runs, or when a run the page drew
    looks different now (`now` lacks a run that was deleted: that is a change too)."""
    if busy_then != busy_now or (started and follow_new):
        return True
    return any(now.get(run_id) != sig for run_id, sig in followed.items())
