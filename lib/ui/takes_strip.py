"""The takes of one setting side by side: a strip of tiles (wrapping on a phone) with one synced bar.

Why a strip and why synced: takes exist to be judged against each other (the model has no seed), and
two clips are compared by watching the same moment of each. Each tile is one run (its number, state,
video and its own actions, as any run); the videos belong to one sync_player group, so Compose's strip
has its own bar and a Compare grid's one bar drives every take of every cell. Which runs are the takes
of one setting is lib/takes.py's rule; this module only draws.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import streamlit as st

from lib import money, playback, playground, takes
from lib.ledger import ACTIVE, COMPLETED, FAILED, Run
from lib.ui import card, page_script, player, share_links, sync_player, who
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.services import Services

TILE_MIN_PX = 90  # a tile's narrowest: 3 takes fit Compose's runs column at 1280 px; a phone's cell wraps
TAKE_SOURCES = ("compose", "rerun")  # a group of these alone is a Generate press's takes (not a Compare grid)


def strip_key(group_id: str) -> str:
    """The sync_player key of one Compose strip (its videos and its bar)."""
    return f"takes-{group_id[:10]}"


def _css(box_key: str) -> str:
    """Tiles share the row and wrap when narrower than TILE_MIN_PX (one per line on a narrow cell)."""
    return (f".st-key-{box_key}{{flex-wrap:wrap!important}}"
            f".st-key-{box_key} > *{{flex:1 1 {TILE_MIN_PX}px!important;min-width:{TILE_MIN_PX}px!important;"
            "max-width:100%}"
            # a tile is one video wide: a thin frame, not a card's padding
            f".st-key-{box_key} [class*='_tile_']{{padding:.4rem!important;gap:.35rem!important}}"
            f".st-key-{box_key} [class*='_tile_'] button{{padding-left:.5rem;padding-right:.5rem}}")


def _tile_actions(services: Services, run: Run, key: str, label: str) -> None:
    """One take's own actions, as a card offers them (promote, re-run, share, download), in a popover so
    a narrow tile stays one video wide."""
    mine = who.may_act(services, run)
    with st.popover("More", key=f"{key}_more_{run.run_id}",
                    help=f"{label}: promote, re-run, share or download this take"):
        if mine and run.state == COMPLETED and (promote := card.promote_label(services, run)):
            st.button(promote, key=f"{key}_promote_{run.run_id}", icon=":material/upgrade:",
                      on_click=card.press_promote, args=(run.run_id,),
                      help="The same prompt, frames and duration as pro 1080p, linked to this take.")
        if mine:
            st.button("Re-run", key=f"{key}_rerun_{run.run_id}", icon=":material/replay:",
                      on_click=card.press_rerun, args=(run.run_id,),
                      help="Fill Compose with every setting of this take. Free: nothing is sent until "
                           "you press Generate.")
        if run.video_path and services.archive.exists(run.video_path):
            st.link_button("Download", player.download_url(services, run.video_path),
                           icon=":material/download:")
        st.page_link("pages/run.py", query_params={"id": run.run_id}, label="Open this take",
                     icon=":material/open_in_new:")
        share_links.run_link(services, run)


def tile(services: Services, run: Run, number: int, of: int, *, key: str, player_key: str,
         actions: bool = True) -> None:
    """One take: 'Take 2 of 3', its state, its video in the group's sync (or its progress), its actions."""
    label = takes.words(number, of)
    with st.container(border=True, key=f"{key}_tile_{run.run_id}", gap="xsmall"):
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.markdown(f"**{label}**")
            card.state_badge(run)
        if run.state == COMPLETED:
            if not sync_player.cell_video(run, services.archive, key=player_key, label=label):
                shown = playback.playback(run, time.time())  # saving, or why it is not saved, in words
                st.caption(escape_md(shown.message or "No video."))
        elif run.state in ACTIVE:
            card.live_status(services, run)
        elif run.state == FAILED:
            st.error(escape_md(playground.explain(run)), icon=":material/error:")
            st.caption("Not billed.")
        else:
            st.caption(escape_md(playground.explain(run)))
        if actions:
            _tile_actions(services, run, key, label)


def tiles(services: Services, runs: Sequence[Run], *, key: str, player_key: str,
          actions: bool = True) -> None:
    """The takes of one setting, in the order written, as a wrapping row of tiles."""
    box = f"{key}_strip"
    with st.container(horizontal=True, gap="xsmall", key=box):
        for i, run in enumerate(runs, start=1):
            tile(services, run, i, len(runs), key=key, player_key=player_key, actions=actions)
    page_script.style(_css(box))


def archived(runs: Sequence[Run]) -> int:
    return sum(1 for r in runs if r.video_path)


def is_take_group(runs: Sequence[Run]) -> bool:
    """A group made by Generate with takes (and its "Another take" runs), not a Compare pair or grid."""
    return len(runs) > 1 and all(r.source in TAKE_SOURCES for r in runs)


def strip(services: Services, group_id: str, runs: Sequence[Run]) -> None:
    """A Generate press's takes: what they are and cost, one play control, the tiles, one more take."""
    key = f"strip_{group_id[:10]}"
    pkey = strip_key(group_id)
    newest = runs[-1]
    with st.container(border=True, key=key):
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.badge(f"{len(runs)} takes", color="violet", icon=":material/view_week:")
            who.owner_badge(services, newest)
            cost = sum(r.est_cost for r in runs)
            st.caption(escape_md(card.describe(newest)) + f" · {money.estimate(cost)} for all takes")
        prompt = newest.request.prompt
        st.text(shorten(prompt, 300) if prompt else "(prompt unknown)")
        count = archived(runs)
        if count:
            sync_player.bar(pkey, count, sticky_key=f"{key}_bar")
        tiles(services, runs, key=key, player_key=pkey)
        if who.may_act(services, newest) and newest.state not in ACTIVE and \
                (label := card.take_label(services, newest)):
            st.button(label, key=f"{key}_another", icon=":material/add_circle:",
                      on_click=card.press_take, args=(newest.run_id, card.TAKEN),
                      help="One more take of these settings, added to this strip. Priced on the button.")


def draw_runs(services: Services, runs: Sequence[Run]) -> None:
    """Compose's latest runs: each Generate press with takes as one strip (where its newest take is in
    the list), every other run as its card."""
    drawn: set[str] = set()
    for run in runs:
        gid = run.group_id
        if gid and run.source in TAKE_SOURCES:
            if gid in drawn:
                continue
            group = services.ledger.group(gid)
            if is_take_group(group):
                drawn.add(gid)
                strip(services, gid, group)
                continue
        card.run_card(services, run, tick=True)  # drawn by card.live_runs: its bar ticks on its own


__all__ = ["archived", "draw_runs", "is_take_group", "strip", "strip_key", "tile", "tiles"]
