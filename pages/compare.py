"""Compare: one prompt (or up to four variants) across modes, durations and aspects, priced before sending.

Why this page only lays out: the form and its seeding live in lib/ui/compare_form.py, a saved grid in
lib/ui/compare_grid.py, every decision (cells, forbidden cells and why, costs, budget, restoring a saved
grid) in lib/compare.py. The ledger is the truth: `?group=<id>` redraws a grid from its runs after a reload
or on a later visit, and unfinished cells keep filling in.
"""
from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from lib import query
from lib.ui import compare_form, compare_grid, frame, pair_view, preset_controls, press
from lib.ui.text import escape_md

services = frame.render("Compare", icon=":material/compare:")

params = query.QueryReader(st.query_params)
group_id = params.ident("group", quiet=True)  # a malformed id is "not found", like an unknown one
group_runs = services.ledger.group(group_id) if group_id else []
compare_form.init_form()
note = compare_form.seed_from_sources(services, group_runs, params)

st.title("Compare")
st.caption("One prompt (or up to four variants) across std 720p / pro 1080p, durations and aspect ratios: "
           "every cell priced before anything is sent, then played back in sync.")
if note:
    st.info(note, icon=":material/tune:")

if press_note := press.note_for(group_id if group_runs else None):
    with st.container(key=f"{compare_form.K}press_note"):
        st.info(escape_md(press_note), icon=":material/info:")
if params.has("group") and not group_runs:
    st.warning("That grid was not found (the link may be mistyped). Build a new one below.",
               icon=":material/link_off:")
pair_of = None if group_runs else params.ident("run", quiet=True)  # a single run: beside its pair
form_box: DeltaGenerator
if group_runs and group_id:
    compare_grid.draw_group(services, group_id, group_runs)
    form_box = st.expander("New grid from these settings", expanded=False)
elif pair_of and pair_view.render(services, pair_of):
    form_box = st.expander("New grid from these settings", expanded=False)
else:
    form_box = st.container()

with form_box, st.container(key=f"{compare_form.K}form"):
    preset_controls.compare_bar(services)
    compare_form.draw_form()
    grid_plan = compare_form.current_plan(services)  # every cell × its takes, priced
    compare_form.draw_preview(grid_plan)
    compare_form.draw_total_and_submit(services, grid_plan)
