"""Compare's saved grid: each cell with its state, actions and video, live while cells are unfinished.

Why here and not in the page: drawing a grid (cells, actions, the live fragment and synced playback) is
one concept shared by nothing else on the page; the decisions (which run fills which cell, costs) are in
lib/compare.py.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import streamlit as st

from lib import compare, history, money, owners, playground, spend_labels, state_words, takes
from lib.contract import format_estimate
from lib.durations import format_seconds
from lib.ledger import ACTIVE, COMPLETED, FAILED, Run
from lib.ui import card, press, share_links, state, sync_player, takes_strip, triage_controls, who
from lib.ui.compare_form import DRAWN, GRID_REFUSED, SEEDED, K, rows, seed_form
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.services import Services


# ------------------------------------------------------------------ callbacks (run before the script)
def _on_rerun_grid(group_id: str) -> None:
    """The same grid again, as a new group (a new take of every cell)."""
    ss = st.session_state
    svc = state.services()
    spec = compare.spec_from_runs(svc.ledger.group(group_id))
    if spec is None:
        return
    runs = svc.ledger.group(group_id)
    plan = compare.expand(spec, svc.settings.prices, takes=takes.pressed(runs))  # as many takes as it had
    result = press.submit_grid(f"rerun_grid:{group_id}", plan)
    if not result.ok:
        ss[GRID_REFUSED] = result.refused or "; ".join(p.message for p in result.problems)
        if not result.runs:
            return
    seed_form(spec)
    ss[SEEDED] = f"group:{result.group_id}"
    state.navigate("pages/compare.py", {"group": result.group_id})


def _on_cell_rerun(run_id: str) -> None:
    """A new take of one cell, in the same group with the same label (the grid shows the newest)."""
    card.press_take(run_id, "New take: this cell is being made again; the grid shows the newest take.")


def _on_promote(run_id: str) -> None:
    """std → pro with the same prompt and frames, as a child run (one promotion per cell)."""
    card.press_promote(run_id, "Promoted: a pro run of the same length is on its way, linked to this cell.")


# ------------------------------------------------------------------ drawing
def _finished_text(run: Run) -> str:
    took = run.seconds_to_finish
    if took is None:
        took = playground.elapsed_seconds(run, time.time())
    return f"Finished in {format_seconds(took)}"


def player_key(group_id: str) -> str:
    """The synced player's key for a group: ties the cells' videos to the group's one bar."""
    return f"grid-{group_id[:10]}"


def draw_cell(services: Services, view: compare.CellView, *, show_prompt: bool = False, key: str = "grid",
              promoted: Sequence[Run] = ()) -> None:
    """One cell: label and state, its video (in the cell, driven by the grid's bar), cost and actions."""
    cell, run = view.cell, view.run
    with st.container(border=True, key=f"{K}cell_{cell.index}"):
        if cell.forbidden:
            st.markdown(f"~~{escape_md(cell.label)}~~")
            st.caption(escape_md(cell.forbidden) + " · not sent, not billed")
            return
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.markdown(f"**{escape_md(cell.label)}**")
            if run is not None and view.takes < 2:
                card.state_badge(run)
            if view.takes > 1:
                st.badge(f"{view.takes} takes", color="violet", icon=":material/view_week:")
        if show_prompt:
            st.caption(escape_md(shorten(cell.request.prompt, 90)))
        if run is None:
            st.caption("Not sent.")
            return
        if view.takes > 1:  # every take side by side, each its own run with its own actions
            _takes_cell(services, view, run, key=key, promoted=promoted)
            return
        if run.state == COMPLETED:
            sync_player.cell_video(run, services.archive, key=key, label=cell.label)
        cost = format_estimate(run.est_cost)
        if run.state in ACTIVE:
            card.progress_block(services, run)  # a moving bar and "usually ~40 s" while at 0 %
            st.caption(cost)
        elif run.state == COMPLETED:
            note = "" if run.video_path else " · archiving…"
            st.caption(f"{_finished_text(run)} · {cost}{note}")
        elif run.state == FAILED:
            st.error(escape_md(playground.explain(run)), icon=":material/error:")
            st.caption("Not billed.")
        else:
            st.caption(escape_md(playground.explain(run)))
        for child in promoted:
            req = child.request
            st.page_link("pages/run.py", query_params={"id": child.run_id}, icon=":material/upgrade:",
                         label=f"Promoted: {req.effective_mode} · {req.effective_duration} s · "
                               f"{state_words.words(child.state)}")
        with st.container(horizontal=True, gap="small", key=f"{K}actions_{cell.index}"):
            mine = who.may_act(services, run)  # another user's grid: share only (lib/owners.py)
            if mine and run.state == COMPLETED and (label := card.promote_label(services, run)):
                st.button(label, key=f"{K}promote_{run.run_id}", icon=":material/upgrade:",
                          on_click=_on_promote, args=(run.run_id,), disabled=bool(promoted),
                          help="The same prompt, frames and duration as pro 1080p, linked to this cell.")
            if mine and run.state not in ACTIVE and (label := card.take_label(services, run)):
                st.button(label, key=f"{K}rerun_{run.run_id}",
                          icon=":material/add_circle:", on_click=_on_cell_rerun, args=(run.run_id,),
                          help=f"A new take of this cell ({cost}); the grid shows the newest take.")
            with st.popover("Share", icon=":material/link:", key=f"{K}share_{cell.index}"):
                share_links.run_link(services, run)


def _takes_cell(services: Services, view: compare.CellView, newest: Run, *, key: str,
                promoted: Sequence[Run]) -> None:
    """A cell with several takes: the strip (videos in the grid's sync), their cost, one more take."""
    all_takes = [*view.older, newest]
    takes_strip.tiles(services, all_takes, key=f"{K}cell_{view.cell.index}", player_key=key)
    st.caption(f"{format_estimate(sum(r.est_cost for r in all_takes))} for {len(all_takes)} takes")
    for child in promoted:
        req = child.request
        st.page_link("pages/run.py", query_params={"id": child.run_id}, icon=":material/upgrade:",
                     label=f"Promoted: {req.effective_mode} · {req.effective_duration} s · "
                           f"{state_words.words(child.state)}")
    with st.container(horizontal=True, gap="small", key=f"{K}actions_{view.cell.index}"):
        if who.may_act(services, newest) and newest.state not in ACTIVE and \
                (label := card.take_label(services, newest)):
            st.button(label, key=f"{K}rerun_{newest.run_id}", icon=":material/add_circle:",
                      on_click=_on_cell_rerun, args=(newest.run_id,),
                      help="One more take of this cell, added to its strip.")


def every_take(views: Sequence[compare.CellView]) -> list[Run]:
    """Every run shown in the grid: each cell's takes, oldest first."""
    return [r for v in views for r in (*v.older, v.run) if r is not None]


def draw_cells(services: Services, plan: compare.GridPlan, tree: Sequence[Run], group_id: str, *,
               key: str = "grid") -> None:
    """The cells from one read of the group and its children (`ledger.group_tree`)."""
    runs = [r for r in tree if r.group_id == group_id]
    promoted: dict[str, list[Run]] = {}
    for r in tree:
        if r.source == "promote" and r.parent_id:
            promoted.setdefault(r.parent_id, []).append(r)
    views = compare.attach_runs(plan, runs)
    n_cols = max(1, len(plan.spec.modes))
    for row in rows(views, n_cols):
        cols = st.columns(n_cols, gap="small")
        for col, view in zip(cols, row, strict=False):
            with col:
                draw_cell(services, view, show_prompt=len(plan.spec.prompts) > 1, key=key,
                          promoted=[c for r in (*view.older, view.run) if r is not None
                                    for c in promoted.get(r.run_id, [])])


def _archived_ids(runs: Sequence[Run]) -> list[str]:
    return sorted(r.run_id for r in runs if r.video_path)


def draw_group(services: Services, group_id: str, runs: Sequence[Run]) -> None:
    spec = compare.spec_from_runs(runs)
    if spec is None:
        return
    plan = compare.expand(spec, services.settings.prices, takes=takes.pressed(runs))
    views = compare.attach_runs(plan, runs)
    shown = every_take(views)  # every take of every cell: each is its own run and charge
    done = sum(1 for r in shown if r.state == COMPLETED)
    failed = sum(1 for r in shown if r.state == FAILED)
    est, billed = history.group_cost(shown)
    with st.container(key=f"{K}group"):
        st.subheader("This grid")
        summary = f"{len(shown)} runs · {done} finished"
        if failed:
            summary += f" · {failed} failed (not billed)"
        summary += f" · {format_estimate(est)} total, ≈ {money.usd(billed)} billable"
        if services.settings.sign_in and shown and not who.may_act(services, shown[0]):
            summary += f" · made by {escape_md(owners.owner_label(shown[0]))}: look and share only"
        st.caption(summary)
        with st.container(horizontal=True, gap="small", vertical_alignment="center", key=f"{K}group_actions"):
            with st.popover("Share this grid", icon=":material/link:", key=f"{K}share_group"):
                share_links.grid_link(services, group_id)
            st.page_link("pages/run.py", query_params={"group": group_id}, label="Open the share view",
                         icon=":material/open_in_new:")
            st.button(spend_labels.grid("Re-run this grid", plan.runs, plan.total),
                      key=f"{K}rerun_grid_{group_id}",
                      icon=":material/replay:", on_click=_on_rerun_grid, args=(group_id,),
                      help=f"Every cell again, as a new grid: {format_estimate(plan.total)}.")
        if st.session_state.get(GRID_REFUSED):
            st.error(st.session_state.pop(GRID_REFUSED), icon=":material/block:")

    pkey = player_key(group_id)

    def live() -> None:
        tree = services.ledger.group_tree(group_id)  # one read a tick, whatever the grid's size
        current = [r for r in tree if r.group_id == group_id]
        draw_cells(services, plan, tree, group_id, key=pkey)
        latest = every_take(compare.attach_runs(plan, current))
        # a newly archived video belongs in the synced player, which only a full run redraws
        # (converges: the full run records what it drew before this body runs)
        if st.session_state.get(DRAWN) != (group_id, _archived_ids(latest)):
            st.rerun()

    pending = any(r.state in ACTIVE or (r.state == COMPLETED and not r.video_path and not r.archive_failed)
                  for r in shown)
    archived = _archived_ids(shown)
    st.session_state[DRAWN] = (group_id, archived)
    with st.container(key=f"{K}gridbox"):  # the bar sticks while this box (the cells) is on screen
        if archived:
            sync_player.bar(pkey, len(archived), sticky_key=f"{K}syncbar", columns_key=f"{K}cells")
        with st.container(key=f"{K}cells"):
            st.fragment(live, run_every=1.0 if pending else None, key=f"{K}live")()

    with st.container(key=f"{K}player"):
        labels = {r.run_id: v.cell.label + (f" · take {i}" if v.takes > 1 else "")
                  for v in views for i, r in enumerate((*v.older, v.run), start=1) if r is not None}
        sync_player.wipe(shown, services.archive, key=pkey, labels=labels)
        if not archived:
            st.caption("Finished cells play in their place together: one control plays, pauses and seeks "
                       "them all.")
        elif len(archived) == 1:
            st.caption("One cell has finished; the others join as they finish.")
        if services.settings.uses_local_gateway and archived:
            st.caption("Synthetic videos from the local gateway (not made by Kling).")
    triage_controls.grid_verdicts(services, views)  # Which is better? per std/pro pair
