"""The read-only share view (`/run?id=…` and `/run?group=…`) and the run facts History reuses.

Why its own module: a share link is a capability handed to anyone, so this view shows exactly one run (or
one comparison group) and nothing else — no history, no key, no other run; a cell of a comparison opened by
its own link shows that cell alone, not its grid — and must work as the first request a freshly started
server sees. User text (prompts, labels, URLs) is drawn only with elements that
never interpret Markdown or HTML (st.text, st.code, dataframes).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from lib import compare, history, links, money, owners, query
from lib.durations import format_seconds
from lib.ledger import ACTIVE, COMPLETED, Run
from lib.ui import card, frame, player, share_links, state, sync_player
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.services import Services

COMPARE_PAGE = card.COMPARE_PAGE
COMPOSE_PAGE = "app.py"


def viewer_tz() -> Any:
    """The viewer's time zone from the browser (UTC when the browser did not say)."""
    try:
        name = st.context.timezone
    except Exception:  # noqa: BLE001 - no browser context (bare script run)
        name = None
    return history.tz_from_name(name)


def facts_frame(items: Sequence[tuple[str, str]], what: str = "Setting") -> pd.DataFrame:
    """(label, value) pairs as a two-column table: a dataframe shows text as text, whatever it contains."""
    return pd.DataFrame({what: [k for k, _ in items], "Value": [str(v) for _, v in items]})


def _facts(items: Sequence[tuple[str, str]], key: str, what: str) -> None:
    with st.container(key=key):
        st.dataframe(facts_frame(items, what), hide_index=True, width="stretch",
                     column_config={what: st.column_config.TextColumn(width=140),
                                    "Value": st.column_config.TextColumn(width="large")})


def run_facts(run: Run, *, key: str, now: float | None = None, stacked: bool = False) -> None:
    """Every parameter, the timings, the cost and the ids of one run (no actions, no other runs).

    stacked=True puts the two tables one under the other (for a narrow column beside the player).
    """
    now = time.time() if now is None else now
    tz = viewer_tz()
    settings_col, timing_col = (st.container(), st.container()) if stacked else st.columns(2, gap="medium")
    with settings_col:
        st.markdown("**Settings**")
        _facts(history.parameter_items(run), key=f"{key}_settings", what="Setting")
        newer = history.latest_under_v1(run, _app_contract())
        if newer:
            st.info(escape_md(newer), icon=":material/new_releases:")
    with timing_col:
        st.markdown("**Timings and cost**")
        items = [*history.timing_items(run, now, tz), ("Cost", history.cost_text(run))]
        _facts(items, key=f"{key}_timings", what="Timing")
    error = history.error_text(run)
    if error:
        st.caption("Gateway message:")
        st.text(error)


def _app_contract() -> str:
    """TOAPIS_CONTRACT of this app (v1 when the services cannot say: the words then err on the side of
    telling)."""
    try:
        return state.services().settings.contract
    except Exception:  # noqa: BLE001 - the page itself reports a start-up failure
        return "v1"


def prompt_block(run: Run, *, key: str, label: str = "Prompt") -> None:
    """The prompt exactly as typed (st.code: no Markdown/HTML, and a copy button)."""
    with st.container(key=key):
        st.markdown(f"**{label}**")
        if history.has_settings(run):
            st.code(run.request.prompt, language=None, wrap_lines=True)
        elif run.unreadable:
            st.text("Unknown: this run's record in the ledger cannot be read.")
        else:
            st.text("Unknown: this run was recovered by its task id, so its settings were not recorded here.")


def owner_line(runs: Sequence[Run]) -> None:
    """Who made a shared run or grid (sign-in only: runs made without it have no owner and show none).
    Only the display name: never the e-mail or the provider's id."""
    names = list(dict.fromkeys(owners.owner_label(r) for r in runs if getattr(r, "owner", None)))
    if names:
        with st.container(key="share_owner"):
            st.caption(escape_md("Made by " + ", ".join(names)))


def _on_rerun(run_id: str) -> None:
    """Open Compose with every setting of the run (images included) carried in its URL.

    The settings travel as Compose's own query params (links.rerun_query), which app.py reads and then
    drops, so this works in a brand-new session opened from a share link, and survives a reload.
    """
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None or not history.has_settings(run):
        return
    state.navigate(COMPOSE_PAGE, links.rerun_query(run.request))


def _on_rerun_grid(group_id: str) -> None:
    services = state.services()
    runs = services.ledger.group(group_id)
    query = history.grid_query(runs)
    if query:
        state.navigate(COMPARE_PAGE, query)


def _status_line(run: Run) -> None:
    card.state_badge(run)
    if run.state in ACTIVE:
        progress = max(0, min(100, int(run.progress or 0)))
        st.progress(progress / 100, text=f"{progress}% · {card.timing(run)}")
    elif run.state == COMPLETED:
        st.caption(escape_md(card.timing(run)))


def media_columns(run: Run) -> tuple[DeltaGenerator, DeltaGenerator]:
    """(player column, facts column) sized by the video's shape, so a 9:16 clip is not 2,000 px tall.

    On a phone Streamlit stacks the columns, so the player simply comes first.
    """
    aspect = (run.aspect_ratio or run.request.effective_aspect) if history.has_settings(run) else "16:9"
    spec = {"9:16": [2, 3], "1:1": [1, 1]}.get(aspect, [3, 2])
    player_col, facts_col = st.columns(spec, gap="medium")
    return player_col, facts_col


def show_run(services: Services, run: Run) -> None:
    """One shared run: the video from our archive, the prompt as text, every setting, and Re-run."""
    st.title("Shared run")
    owner_line([run])
    with st.container(key="share_run"):
        media, info = media_columns(run)
        with media:
            _status_line(run)
            if run.state == COMPLETED:
                player.video(services, run, key="share")  # our archived copy, "Saving…", or words
            elif run.state in ACTIVE:
                st.info("This run is still being generated; the video appears here when it is ready.")
            else:
                st.warning("This run has no video.")
        with info:
            prompt_block(run, key="share_prompt")
            with st.container(horizontal=True, gap="small"):
                st.button("Re-run this config", key="share_rerun", type="primary", icon=":material/replay:",
                          disabled=not history.has_settings(run), on_click=_on_rerun, args=(run.run_id,),
                          help="Open Compose with every setting of this run filled in, images included.")
                with st.popover("Share", icon=":material/link:", key="share_links_run"):
                    share_links.run_link(services, run)
            # A cell of a comparison shows only itself: its link is no key to the grid or the other cells
            # (no group id, no link to it). The grid has its own link, which its owner may share.
            run_facts(run, key="share", stacked=True)
        if history.has_settings(run):
            _snippets(services, run)


def _snippets(services: Services, run: Run) -> None:
    with st.expander("Run it yourself (curl / Python)", icon=":material/code:"):
        base = links.snippet_base(services.settings, public=True)
        st.caption("The same request for the gateway. Set TOAPIS_API_KEY first; the key is never shown here.")
        st.code(links.curl_snippet(run.request, base), language="bash")
        st.code(links.python_snippet(run.request, base), language="python")


def grid_cell(services: Services, run: Run, *, show_prompt: bool, key: str, player_key: str) -> None:
    """One cell of a shared comparison: label, state, its video (driven by the grid's bar), cost."""
    with st.container(border=True, key=f"{key}_{run.run_id}"):
        label = history.grid_cell_label(run)
        st.markdown(f"**{escape_md(label)}**")
        _status_line(run)
        if run.state == COMPLETED and not sync_player.cell_video(run, services.archive, key=player_key,
                                                                 label=label):
            player.video(services, run, key=key)  # not archived yet: "Saving…" or words, never a URL
        if show_prompt:
            st.text(run.request.prompt)
        st.caption(escape_md(f"{history.cost_text(run)} · time to finish "
                             f"{format_seconds(history.time_to_finish(run))}"))
        error = history.error_text(run)
        if error:
            st.text(error)


def group_grid(services: Services, runs: Sequence[Run], *, key: str = "share_cell") -> None:
    """The cells of a comparison group laid out as Compare draws them (std | pro columns, a row per
    prompt variant × duration × aspect), each playing in its place under one synced bar, plus the wipe."""
    modes, rows = compare.mode_rows(runs)
    shown = [r for row in rows for r in row if r is not None]
    varied = len({r.request.prompt for r in shown}) > 1
    pkey = f"share-{key}"
    archived = [r for r in shown if r.state == COMPLETED and r.video_path]
    with st.container(key=f"{key}_gridbox"):  # the bar sticks while this box (the cells) is on screen
        if archived:
            sync_player.bar(pkey, len(archived), sticky_key=f"{key}_syncbar", columns_key=f"{key}_grid")
        with st.container(key=f"{key}_grid"):
            for row in rows:
                cols = st.columns(max(1, len(modes)), gap="small")
                for col, run in zip(cols, row, strict=True):
                    with col:
                        if run is None:
                            st.caption("Not in this grid.")
                        else:
                            grid_cell(services, run, show_prompt=varied, key=key, player_key=pkey)
    sync_player.wipe(archived, services.archive, key=pkey,
                     labels={r.run_id: history.grid_cell_label(r) for r in archived})


def show_group(services: Services, group_id: str, runs: Sequence[Run]) -> None:
    """A shared comparison: every cell with its player and settings, plus Re-run this grid."""
    st.title("Shared comparison")
    owner_line(runs)
    ordered = history.sort_grid(runs)
    total, billed = history.group_cost(ordered)
    done = sum(1 for r in ordered if r.state == COMPLETED)
    cost = f"≈ {money.usd(total)} (estimate)"
    if total - billed > 0.005:
        cost += f", of which ≈ {money.usd(total - billed)} not billed (failed)"
    st.caption(escape_md(f"{len(ordered)} runs · {done} finished · {cost}"))
    prompts = list(dict.fromkeys(r.request.prompt for r in ordered))
    if len(prompts) == 1:
        prompt_block(ordered[0], key="share_prompt")
    with st.container(key="share_group"):
        group_grid(services, ordered)
    with st.container(horizontal=True, gap="small"):
        st.button("Re-run this grid", key="share_rerun_grid", type="primary", icon=":material/replay:",
                  disabled=not history.grid_query(ordered), on_click=_on_rerun_grid, args=(group_id,),
                  help="Open Compare with this grid's prompts, modes, durations and frames filled in.")
        with st.popover("Share", icon=":material/link:", key="share_links_group"):
            share_links.grid_link(services, group_id)


def not_found(message: str = history.NOT_FOUND_MESSAGE) -> None:
    st.title("Shared run")
    st.warning(message, icon=":material/link_off:")
    st.page_link(COMPOSE_PAGE, label="Make your own video", icon=":material/edit_note:")


def render(services: Services) -> None:
    """Route /run?id=… and /run?group=…; an unknown or malformed id gets the same plain message."""
    target = history.parse_share_query(query.QueryReader(st.query_params))
    if target.kind == "run" and target.ident is not None:
        run = services.ledger.get(target.ident)
        if run is not None and run.unreadable:
            not_found("This run's record cannot be read, so it cannot be shown.")
            return
        if run is not None:
            frame.follow([run])
            show_run(services, run)
            return
    elif target.kind == "group" and target.ident is not None:
        runs = services.ledger.group(target.ident)
        if runs:
            frame.follow(runs)
            show_group(services, target.ident, runs)
            return
    not_found(target.message or history.NOT_FOUND_MESSAGE)
