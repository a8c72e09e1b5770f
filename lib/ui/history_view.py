"""The History page: every run in the ledger, filtered and paged in the database, with a detail panel.

Why paged in SQL and nothing cached per session: the ledger may hold 100,000 runs; the page reads one
page of rows (LIMIT/OFFSET) and one COUNT, so it costs the same at any size. The heavier spend/stats
queries run only while their tab is open, and at most once per ledger change.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st
from streamlit_extras.chart_container import chart_container

from lib import contract, history, owners, playground
from lib.ledger import ACTIVE, FAILED, STATES, UNKNOWN, LedgerError, Run, RunFilter
from lib.ui import card, frame, page_script, player, share_view, state, triage_controls, who
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.services import Services

TABLE_KEY = "hist_table"
COMPACT_KEY = "hist_table_compact"  # the phone's one-column table (the same page of runs)
REVEALED_KEY = "hist_revealed"      # the run whose detail panel was last brought into view
PHONE_MAX_PX = 640                  # Streamlit's own small-screen breakpoint
SELECTED_KEY = "hist_selected_run"
PAGE_KEY = "hist_page"
TEXT_KEY = "hist_text"
STATES_KEY = "hist_states"
MODES_KEY = "hist_modes"
DURATIONS_KEY = "hist_durations"
DATES_KEY = "hist_dates"
TEAM_KEY = "hist_team"  # "Whole team" (sign-in only): off shows the viewer's own runs
MORE_KEY = "hist_more_filters"  # a phone's switch for the filters under the search box (see `_more_switch`)
TABS_KEY = "hist_tabs"
RECOVER_KEY = "hist_recover_id"
RECOVERED_KEY = "hist_recovered"
RECOVER_ERROR_KEY = "hist_recover_error"
TAB_RUNS = "Runs"
TAB_STATS = "Spend and stats"
SPEND_TABS = (":material/bar_chart: Chart", ":material/table: Numbers", ":material/download: CSV")
TAB_RECOVER = "Recover by task id"
ROW_HEIGHT = 46
# what people scan first (the poster and prompt), then state and settings, then numbers; run_id stays hidden
COLUMN_ORDER = ("poster", "prompt", *triage_controls.COLUMNS, "state", "mode", "duration", "aspect",
                "est_cost", "time_to_finish", "created", "video")


def _clear_selection() -> None:
    """Another page of rows: a selected row index would point at a run the user never clicked."""
    st.session_state.pop(TABLE_KEY, None)
    st.session_state.pop(COMPACT_KEY, None)
    st.session_state.pop(SELECTED_KEY, None)


def _reset_view() -> None:
    """Filters changed: back to page 1 and no selected row (its index would point at another run)."""
    st.session_state[PAGE_KEY] = 1
    for key in (TABLE_KEY, COMPACT_KEY):
        if key in st.session_state:
            del st.session_state[key]


def _keep_only(key: str) -> None:
    """A row clicked in one table: the other one's old selection must not win on a later rerun."""
    other = COMPACT_KEY if key == TABLE_KEY else TABLE_KEY
    if other in st.session_state:
        del st.session_state[other]


def _active_filters() -> int:
    """How many filters below the search box are set (the values of the last rerun's widgets)."""
    keys = (STATES_KEY, MODES_KEY, DURATIONS_KEY, DATES_KEY, triage_controls.HIST_RATING_KEY,
            triage_controls.HIST_TAG_KEY, triage_controls.HIST_FAV_KEY)  # 0, "" and False mean "any"
    return sum(bool(st.session_state.get(k)) for k in keys)


def _more_switch() -> None:
    """On a phone the filters under the search box stack into a whole screen, so the runs began below the
    fold: there a switch shows them, and says how many are set while they are hidden. A desktop has room
    and never sees the switch. The filters are always drawn (hidden by CSS only), so they keep their
    values and apply either way."""
    with st.container(horizontal=True, vertical_alignment="center", key="hist_more_switch"):
        shown = st.toggle("More filters", key=MORE_KEY)
        if (n := _active_filters()) and not shown:
            st.caption(f"{n} filter{'s' if n > 1 else ''} on")
    css = f"@media (min-width: {PHONE_MAX_PX + 1}px) {{{_gone('hist_more_switch')}}}"
    if not shown:
        css += f"@media (max-width: {PHONE_MAX_PX}px) {{{_gone('hist_more', 'hist_more_triage')}}}"
    page_script.style(css)


def _gone(*keys: str) -> str:
    """CSS that takes keyed containers out of the page, with the wrapper Streamlit puts around each one
    (left in place, the empty wrapper still adds a gap of its own)."""
    sel = ", ".join(f".st-key-{k}, [data-testid='stLayoutWrapper']:has(> .st-key-{k})" for k in keys)
    return sel + " {display: none;}"


def _filters() -> RunFilter:
    text = st.text_input("Search runs", key=TEXT_KEY, on_change=_reset_view,
                         placeholder="Words from the prompt, a run id or a task id")
    _more_switch()
    with st.container(key="hist_more"):
        return _filter_row(text)


def _filter_row(text: str) -> RunFilter:
    # a wrapping row: side by side on a desktop, two to a line on a phone instead of one tall column
    with st.container(horizontal=True, gap="small", key="hist_filters"):
        states = st.multiselect("State", STATES, key=STATES_KEY, on_change=_reset_view, width=230,
                                format_func=lambda s: history.STATE_LABELS.get(s, s), placeholder="Any")
        modes = st.pills("Mode", contract.MODES, selection_mode="multi", key=MODES_KEY,
                         on_change=_reset_view)
        offered = contract.durations_for(state.services().settings.contract)  # 3–15 s under latest
        durations = st.pills("Duration", offered, selection_mode="multi", key=DURATIONS_KEY,
                             format_func=lambda d: f"{d} s", on_change=_reset_view)
        dates = st.date_input("Created between", value=[], key=DATES_KEY, on_change=_reset_view,
                              format="YYYY-MM-DD", width=250)
    return history.parse_filter(text, states or (), modes or (), durations or (), dates,
                                share_view.viewer_tz())


def _poster(services: Services) -> Callable[[Run], str | None]:
    def url(run: Run) -> str | None:
        if not run.poster_path:
            return None
        try:
            return player.archive_url(services, run.poster_path)
        except ValueError:
            return None
    return url


def _column_config() -> dict[str, Any]:
    cc = st.column_config
    try:
        tz = st.context.timezone
    except Exception:  # noqa: BLE001 - no browser context
        tz = None
    return {
        "poster": cc.ImageColumn("Poster", width="small"),
        "state": cc.TextColumn("State", width="small"),
        "mode": cc.TextColumn("Mode", width="small"),
        "duration": cc.TextColumn("Duration", width="small"),
        "aspect": cc.TextColumn("Aspect", width="small"),
        "prompt": cc.TextColumn("Prompt", width="medium"),
        "est_cost": cc.NumberColumn("Est. cost", format="$%.2f", width="small",
                                    help="Estimated from the per-second price; not what the gateway bills."),
        "time_to_finish": cc.TextColumn("Time to finish", width="small"),
        "created": cc.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm", timezone=tz or "UTC"),
        "video": cc.TextColumn("Video", help="'archived' (kept here for good) or how long the gateway's "
                                             "link still works (24 h)."),
        "owner": cc.TextColumn("Owner", width="small", help="Who made the run (Team: before sign-in)."),
        "run_id": None,
        **triage_controls.column_config(),
    }


def _table(services: Services, flt: RunFilter) -> Any:
    """One page of runs; returns the selected run (or None)."""
    ledger = services.ledger
    total = _count(id(ledger), ledger.changes(), flt)
    pages = history.page_count(total)
    page = history.clamp_page(st.session_state.get(PAGE_KEY), total)
    if st.session_state.get(PAGE_KEY) not in (None, page):
        st.session_state[PAGE_KEY] = page
    runs = ledger.list_runs(flt, limit=history.PAGE_SIZE, offset=history.page_offset(page))
    table = pd.DataFrame(history.table_rows(runs, time.time(), _poster(services)),
                         columns=list(history.TABLE_COLUMNS))
    triage_controls.add_columns(table, runs, ledger)  # rating, favourite, tags
    by_owner = services.settings.sign_in and flt.owner is None  # "Whole team": whose run each row is
    if by_owner:
        table["owner"] = [owners.owner_label(r) for r in runs]
    frame.follow(runs, new_runs=page == 1)  # newest first: a run that starts lands on page 1
    # one table for each screen width (a grid cannot change its columns by CSS): only one is ever shown
    page_script.style(f"@media (max-width: {PHONE_MAX_PX}px) {{{_gone('hist_wide')}}}"
                      f"@media (min-width: {PHONE_MAX_PX + 1}px) {{{_gone('hist_compact')}}}"
                      # the grid's hover toolbar sits above its top edge: room so it never covers Export CSV
                      ".st-key-hist_toolbar {margin-bottom: 1.75rem;}")
    with st.container(horizontal=True, vertical_alignment="center", key="hist_toolbar"):
        st.caption(history.page_caption(page, total))
        st.space("stretch")
        st.download_button(
            "Export CSV",
            data=lambda: history.export_csv(ledger, flt),
            file_name=history.csv_file_name(time.time()),
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
            key="hist_export",
            disabled=total == 0,
            help=f"Every run that matches the filters (not just this page), newest first, as CSV, up to "
                 f"{history.CSV_MAX_MB} MB: a bigger export stops there and its last line says how many "
                 "runs it holds.",
        )
    with st.container(key="hist_wide"):
        event = st.dataframe(
            table, key=TABLE_KEY, on_select=partial(_keep_only, TABLE_KEY), selection_mode="single-row",
            hide_index=True, column_config=_column_config(), row_height=ROW_HEIGHT,
            column_order=(*COLUMN_ORDER[:2], "owner", *COLUMN_ORDER[2:]) if by_owner else COLUMN_ORDER,
            placeholder="—",
        )
    compact = pd.DataFrame(history.compact_rows(table.to_dict("records")), columns=["run", "run_id"])
    if by_owner and len(compact):
        compact["run"] = [f"{o} · {r}" for o, r in zip(table["owner"], compact["run"], strict=True)]
    triage_controls.mark_compact(compact, table)  # "★★★★☆ ♥ · …" on the phone's one column
    with st.container(key="hist_compact"):
        small = st.dataframe(
            compact, key=COMPACT_KEY, on_select=partial(_keep_only, COMPACT_KEY),
            selection_mode="single-row", hide_index=True, row_height=ROW_HEIGHT, placeholder="—",
            column_config={"run": st.column_config.TextColumn("Run", width="large"), "run_id": None},
        )
    if pages > 1:
        st.pagination(pages, key=PAGE_KEY, max_visible_pages=5, on_change=_clear_selection)
    rows = (list(getattr(getattr(small, "selection", None), "rows", None) or [])
            or list(getattr(getattr(event, "selection", None), "rows", None) or []))
    if total == 0:
        st.info("No runs match these filters." if replace(flt, owner=None, sort="newest") != RunFilter() else
                "No runs yet. Make one on Compose, or recover a task made elsewhere by its task id.")
    if rows and 0 <= rows[0] < len(runs):
        index = rows[0]
        kept = st.session_state.get(SELECTED_KEY)
        if kept and kept[0] == index and kept[1] != runs[index].run_id:
            # New runs arrived and pushed the rows down: the selection means the run that was clicked.
            return ledger.get(kept[1])
        st.session_state[SELECTED_KEY] = (index, runs[index].run_id)
        return runs[index]
    st.session_state.pop(SELECTED_KEY, None)
    return None


def _detail(services: Services, run: Run) -> None:
    with st.container(key="hist_detail"):
        st.subheader("Selected run")
        media, info = share_view.media_columns(run)
        with media:
            card.run_card(services, run, key="hist", show_prompt=False)
        with info:
            share_view.prompt_block(run, key="hist_prompt")
            share_view.run_facts(run, key="hist_facts", stacked=True)
        ids = history.identity_items(run)
        st.caption(escape_md(" · ".join(f"{k}: {v}" for k, v in ids)))


@st.cache_data(show_spinner=False, max_entries=32)
def _count(ledger_key: int, version: tuple, flt: RunFilter) -> int:
    """COUNT(*) over the matching runs grows with the ledger (9 ms at 100,000 runs): once per ledger
    change and filter, not on every click."""
    del ledger_key, version  # cache keys only
    return state.services().ledger.count_runs(flt)


@st.cache_data(ttl=60, show_spinner=False, max_entries=8)
def _stats(ledger_key: str, version: tuple, utc_offset: float) -> tuple[dict, list]:
    """stats() and spend_by_day() read every finished run: once per ledger change, not per rerun."""
    del ledger_key, version  # cache keys only
    ledger = state.services().ledger
    return ledger.stats(), ledger.spend_by_day(history.SPEND_DAYS, utc_offset=utc_offset)


def _spend_and_stats(services: Services) -> None:
    ledger = services.ledger
    offset = history.utc_offset_seconds(share_view.viewer_tz(), time.time())
    stats, by_day = _stats(repr(ledger), ledger.changes(), offset)
    with st.container(horizontal=True, key="hist_stats"):
        for label, value in history.stats_summary(stats):
            st.metric(label, value, border=True)
    st.markdown(f"**Estimated spend per day** (last {history.SPEND_DAYS} days; failed runs are not billed)")
    spend = history.spend_frame(by_day)
    # streamlit-extras' chart_container: the chart, its numbers and a CSV of them in three tabs (the day
    # as the index, so the file reads "day,estimated USD")
    with st.container(key="hist_spend"), chart_container(spend.set_index("day"), tabs=SPEND_TABS,
                                                         export_formats=["CSV"]):
        st.bar_chart(spend, x="day", y="estimated USD", height=220, sort=False,
                     x_label="", y_label="USD (estimate)")
    st.markdown("**Median time to finish** (completed runs, from sending to finished)")
    medians = history.median_rows(stats)
    if medians:
        with st.container(key="hist_medians"):
            st.dataframe(pd.DataFrame(medians), hide_index=True)
    else:
        st.caption("No completed runs yet.")
    triage_controls.verdict_stats(services)  # how often pro beat std, and what it cost


def _on_recover() -> None:
    """Callback: join the task to the ledger; the worker follows it from here (pages never poll)."""
    services = state.services()
    st.session_state.pop(RECOVER_ERROR_KEY, None)
    task_id = (st.session_state.get(RECOVER_KEY) or "").strip()
    try:
        run = playground.recover(services, task_id, actor=who.current(services))
    except (ValueError, LedgerError) as exc:
        st.session_state[RECOVER_ERROR_KEY] = str(exc)
        return
    st.session_state[RECOVERED_KEY] = run.run_id
    st.session_state[RECOVER_KEY] = ""


def _recover(services: Services) -> None:
    st.caption("Paste the id of a task made elsewhere (for example with curl). It joins this history and "
               "is followed like any other run; nothing is submitted again.")
    with st.form("hist_recover_form", border=False, enter_to_submit=True):
        st.text_input("Task id", key=RECOVER_KEY, placeholder="task_01…")
        st.form_submit_button("Recover", on_click=_on_recover, icon=":material/sync:")
    error = st.session_state.get(RECOVER_ERROR_KEY)
    if error:
        st.error(escape_md(error), icon=":material/error:")
    run_id = st.session_state.get(RECOVERED_KEY)
    run = services.ledger.get(run_id) if run_id else None
    if run is not None:
        if run.state in (FAILED, UNKNOWN):
            st.error(escape_md(f"Task {run.task_id} could not be followed: {playground.explain(run)}"),
                     icon=":material/error:")
        elif run.state in ACTIVE and run.error_message:
            # e.g. the gateway answered 404: the worker keeps looking (backing off) and says so here
            st.warning(escape_md(f"Task {run.task_id}: {run.error_message}"), icon=":material/help:")
        else:
            st.success(escape_md(f"Task {run.task_id} is in the history; the worker follows it."),
                       icon=":material/check_circle:")
        card.run_card(services, run, key="hist_rec", show_prompt=False,
                      actions=("download", "share") if history.has_settings(run) else ("download",))


def render(services: Services) -> None:
    st.title("History")
    runs_tab, stats_tab, recover_tab = st.tabs([TAB_RUNS, TAB_STATS, TAB_RECOVER], key=TABS_KEY,
                                               on_change="rerun")
    with runs_tab:  # always drawn: its filters keep their values while another tab is open
        whole_team = who.team_switch(services, TEAM_KEY, on_change=_reset_view)  # sign-in only
        flt = replace(_filters(), owner=who.owner_filter(services, whole_team))
        with st.container(key="hist_more_triage"):  # with the filters above: behind a phone's switch
            flt = triage_controls.history_filters(services, flt, on_change=_reset_view)
        selected = _table(services, flt)
        if selected is not None:
            frame.follow([selected])
            _detail(services, selected)
            if st.session_state.get(REVEALED_KEY) != selected.run_id:  # a row was just clicked
                st.session_state[REVEALED_KEY] = selected.run_id
                page_script.reveal("hist_detail", nonce=selected.run_id, within=0.6)
        else:
            st.session_state.pop(REVEALED_KEY, None)
    if stats_tab.open:  # the only costly queries: run them only while someone looks
        with stats_tab:
            _spend_and_stats(services)
    with recover_tab:
        _recover(services)
