"""The prompt library where people use it: "Save as preset" and "Start from preset" on Compose, "Start grid
from preset" on Compare.

Why callbacks: filling a form writes its widgets' keys, which Streamlit allows only before those widgets
are drawn in a run; a button's on_click runs before the script, so the form draws the preset at once.
Saving goes to the ledger only: it costs nothing and never submits (no press memory, no gateway).
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from lib import presets
from lib.ledger import LedgerError
from lib.presets import NameTaken, Preset, PresetError
from lib.ui import compare_form, compose_form, state
from lib.ui.text import escape_md, shorten

K = "preset_"
NAME, TAGS, OUTCOME, CLASH = f"{K}name", f"{K}tags", f"{K}outcome", f"{K}clash"
PENDING_COMPOSE, PENDING_GRID = f"{K}pending_compose", f"{K}pending_grid"  # set by the manager page


def describe(preset: Preset) -> str:
    """One line of settings: 'std · 5 s · 16:9 · first frame · watermark'."""
    req = preset.request
    parts = [req.effective_mode, f"{req.effective_duration} s", req.effective_aspect]
    parts += ["first frame", "last frame"][: len(req.image_urls)]
    if req.watermark:
        parts.append("watermark")
    if req.audio:
        parts.append("Sound")
    if req.references:
        parts.append(f"{len(req.references)} reference image{'s' if len(req.references) > 1 else ''}")
    if req.negative_prompt:
        parts.append("negative prompt")
    return " · ".join(str(p) for p in parts)


def option_label(preset: Preset) -> str:
    tags = f" [{', '.join(preset.tags)}]" if preset.tags else ""
    return shorten(f"{preset.name}{tags}", 70)


def picker(services: Any, where: str) -> Preset | None:
    """Tag filter + preset select; the chosen preset (or None). `where` keeps each page's keys apart."""
    every = services.ledger.list_presets()  # one read per rerun: the tags come from the same rows
    tags = presets.tags_of(every)
    tag = st.pills("Filter by tag", tags, key=f"{K}{where}_tag") if tags else None
    found = presets.with_tag(every, tag)
    if not found:
        st.caption("No presets yet: fill the form on Compose and use “Save as preset”." if not tag
                   else "No preset carries this tag.")
        return None
    by_id = {p.preset_id: p for p in found}
    chosen = st.selectbox("Preset", list(by_id), index=None, key=f"{K}{where}_pick",
                          format_func=lambda i: option_label(by_id[i]) if i in by_id else "(deleted)",
                          placeholder="Choose a preset")
    preset = by_id.get(chosen) if chosen else None
    if preset is not None:
        st.caption(escape_md(shorten(preset.request.prompt, 160)))
        st.caption(escape_md(describe(preset)))
    return preset


def picker_list(services: Any) -> list[Preset]:
    """The manager's list: filtered by a tag and by words in the name or prompt."""
    every = services.ledger.list_presets()
    tags = presets.tags_of(every)
    tag = st.pills("Filter by tag", tags, key=f"{K}manage_tag") if tags else None
    words = st.text_input("Search names and prompts", key=f"{K}manage_search", placeholder="e.g. fox")
    found = presets.with_tag(every, tag)
    needle = " ".join((words or "").split()).casefold()
    if needle:
        found = [p for p in found if needle in p.name.casefold() or needle in p.request.prompt.casefold()]
    if not found:
        st.caption("No presets yet: fill the form on Compose and use “Save as preset”, or import a file "
                   "below."
                   if not (tag or needle) else "No preset matches.")
    return found


# ------------------------------------------------------------------ callbacks
def fill_compose(preset: Preset) -> None:
    """Put the preset into Compose's keys (call before its widgets draw) and say so."""
    compose_form.apply_restore(preset.request)
    st.session_state[OUTCOME] = ("info", f"Filled in from the preset “{preset.name}”: change anything, then "
                                         "press Generate. Nothing was sent.")


def fill_grid(preset: Preset) -> None:
    compare_form.seed_form(preset.grid_spec())
    st.session_state[compare_form.SEEDED] = f"preset:{preset.preset_id}"
    st.session_state[OUTCOME] = ("info", f"Grid filled in from the preset “{preset.name}” (std and pro): "
                                         "widen it, check the cost, then press Submit grid.")


def _on_start(where: str) -> None:
    preset = state.services().ledger.get_preset(st.session_state.get(f"{K}{where}_pick") or "")
    if preset is None:
        st.session_state[OUTCOME] = ("error", "That preset no longer exists (deleted in another tab?); "
                                              "nothing was filled in.")
    elif where == "compose":
        fill_compose(preset)
    else:
        fill_grid(preset)


def _on_save(overwrite: bool = False, name: str | None = None) -> None:
    ss = st.session_state
    ss.pop(CLASH, None)
    chosen = ss.get(NAME, "") if name is None else name
    try:
        preset = presets.make(chosen, ss.get(TAGS, ""), compose_form.current_request())
        saved = state.services().ledger.save_preset(preset, overwrite=overwrite)
    except NameTaken as taken:
        ss[CLASH] = taken.name
        ss[OUTCOME] = ("warning", str(taken))
        return
    except (PresetError, LedgerError) as exc:
        ss[OUTCOME] = ("error", f"Not saved: {exc}")
        return
    verb = "Overwrote" if overwrite else "Saved"
    ss[OUTCOME] = ("success", f"{verb} the preset “{saved.name}”. Nothing was sent or charged.")
    ss[NAME] = ""


def free_name(services: Any, name: str) -> str:
    """'Fox (2)', 'Fox (3)'…: the first name not taken, for "save under another name"."""
    base = presets.clean_name(name)[: presets.MAX_NAME - 5]
    n = 2
    while services.ledger.find_preset(f"{base} ({n})") is not None and n < 1000:
        n += 1
    return f"{base} ({n})"


# ------------------------------------------------------------------ drawing
def show_outcome() -> None:
    outcome = st.session_state.pop(OUTCOME, None)
    if outcome:
        kind, words = outcome
        icon = {"success": ":material/bookmark_added:", "warning": ":material/warning:",
                "error": ":material/error:"}.get(kind, ":material/bookmarks:")
        with st.container(key=f"{K}outcome_box"):
            getattr(st, kind)(escape_md(words), icon=icon)


def compose_bar(services: Any) -> None:
    """Compose's two controls, above the form. A preset opened from the manager page is filled in here."""
    ss = st.session_state
    pending = ss.pop(PENDING_COMPOSE, None)
    if pending and (preset := services.ledger.get_preset(pending)) is not None:
        fill_compose(preset)
    with st.container(horizontal=True, key=f"{K}compose_bar", gap="small"):
        with st.popover("Start from preset", icon=":material/bookmarks:", key=f"{K}compose_start_pop"):
            chosen = picker(services, "compose")
            st.button("Fill the form", key=f"{K}compose_fill", icon=":material/input:", type="primary",
                      disabled=chosen is None, on_click=_on_start, args=("compose",),
                      help="Replaces the prompt and settings in the form; nothing is sent.")
            st.page_link("pages/presets.py", label="Manage presets", icon=":material/tune:")
        with st.popover("Save as preset", icon=":material/bookmark_add:", key=f"{K}save_pop"):
            st.text_input("Preset name", key=NAME, placeholder="1–80 characters, e.g. Fox at dawn")
            st.text_input("Tags", key=TAGS, placeholder="comma-separated, e.g. nature, snow")
            st.caption("Saves the prompt, negative prompt, mode, duration, aspect ratio, watermark and "
                       "frames (and, under the latest contract, Sound and reference images). "
                       "Costs nothing; nothing is sent.")
            st.button("Save preset", key=f"{K}save", icon=":material/bookmark_add:", type="primary",
                      on_click=_on_save)
            clash = ss.get(CLASH)
            if clash:
                st.warning(escape_md(f"“{clash}” exists already."), icon=":material/warning:")
                other = free_name(services, clash)
                with st.container(horizontal=True):
                    st.button("Overwrite it", key=f"{K}overwrite", on_click=_on_save, kwargs={
                        "overwrite": True, "name": clash}, icon=":material/published_with_changes:")
                    st.button(shorten(f"Save as “{other}”", 60), key=f"{K}save_other", on_click=_on_save,
                              kwargs={"name": other}, icon=":material/edit:")
    show_outcome()


def compare_bar(services: Any) -> None:
    """Compare's "Start grid from preset", above the grid form."""
    pending = st.session_state.pop(PENDING_GRID, None)
    if pending and (preset := services.ledger.get_preset(pending)) is not None:
        fill_grid(preset)
    with st.popover("Start grid from preset", icon=":material/bookmarks:", key=f"{K}grid_pop"):
        chosen = picker(services, "grid")
        st.button("Fill the grid", key=f"{K}grid_fill", icon=":material/grid_view:", type="primary",
                  disabled=chosen is None, on_click=_on_start, args=("grid",),
                  help="Replaces the grid's prompts and settings with the preset's, across std and pro; "
                       "nothing is sent.")
    show_outcome()
