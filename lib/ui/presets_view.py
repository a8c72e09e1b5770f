"""The Presets page: every preset with rename, retag, delete (confirmed), open in Compose or Compare, and the
library as a JSON file out and in.

Why imports are judged before writing (lib.presets.parse_import): a file is untrusted input; a broken file
is refused whole in words, and each bad preset in a good file is named with its reason and skipped.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from lib import presets
from lib.ledger import LedgerError
from lib.presets import NameTaken, Preset, PresetError
from lib.ui import preset_controls, state
from lib.ui.text import escape_md, shorten

K = "presets_page_"
REPORT, IMPORT_FILE, CONFIRM = f"{K}report", f"{K}import_file", f"{K}confirm_delete"
COMPOSE_PAGE, COMPARE_PAGE = "app.py", "pages/compare.py"


def _rename_key(preset_id: str) -> str:
    return f"{K}rename_{preset_id}"


def _tags_key(preset_id: str) -> str:
    return f"{K}tags_{preset_id}"


def _say(kind: str, words: str) -> None:
    st.session_state[REPORT] = [(kind, words)]


# ------------------------------------------------------------------ callbacks
def _on_rename(preset_id: str) -> None:
    try:
        typed = st.session_state.get(_rename_key(preset_id), "")
        renamed = state.services().ledger.rename_preset(preset_id, typed)
    except (NameTaken, LedgerError) as exc:
        _say("error", f"Not renamed: {exc}")
        return
    _say("success", f"Renamed to “{renamed.name}”.")


def _on_retag(preset_id: str) -> None:
    try:
        typed = st.session_state.get(_tags_key(preset_id), "")
        tagged = state.services().ledger.retag_preset(preset_id, typed)
    except LedgerError as exc:
        _say("error", f"Tags not changed: {exc}")
        return
    _say("success", f"Tags of “{tagged.name}”: {', '.join(tagged.tags) or 'none'}.")


def _on_open(preset_id: str, page: str) -> None:
    key = preset_controls.PENDING_COMPOSE if page == COMPOSE_PAGE else preset_controls.PENDING_GRID
    st.session_state[key] = preset_id
    state.navigate(page)


def _on_import() -> None:
    upload = st.session_state.get(IMPORT_FILE)
    if upload is None:
        _say("warning", "Choose a presets file (.json) first.")
        return
    try:
        plan = presets.parse_import(upload.getvalue())
        result = state.services().ledger.import_presets(plan.presets)
    except (PresetError, LedgerError) as exc:
        _say("error", str(exc))
        return
    added = len(result.added)
    report = [("success" if added else "info",
               f"Imported {added} preset{'s' if added != 1 else ''}"
               + (f": {', '.join(shorten(n, 40) for n in result.added[:10])}." if added else "."))]
    report += [("info", words) for words in [*plan.skipped, *result.skipped]]
    report += [("error", words) for words in [*plan.problems, *result.problems]]
    st.session_state[REPORT] = report


def _on_ask_delete(preset_id: str) -> None:
    st.session_state[CONFIRM] = preset_id


def _on_cancel_delete() -> None:
    st.session_state.pop(CONFIRM, None)


def _on_delete(preset: Preset) -> None:
    st.session_state.pop(CONFIRM, None)
    gone = state.services().ledger.delete_preset(preset.preset_id or "")
    words = f"Deleted “{preset.name}”." if gone else "That preset was already deleted."
    _say("success" if gone else "info", words)


@st.dialog("Delete this preset?", on_dismiss=_on_cancel_delete)
def _confirm_delete(preset: Preset) -> None:
    """Open while CONFIRM names the preset: a rerun (or AppTest) keeps the question until it is answered."""
    st.markdown(f"**{escape_md(preset.name)}** will be deleted. Runs made from it are kept; this cannot be "
                "undone (export the library first to keep a copy).")
    with st.container(horizontal=True):
        st.button("Delete", type="primary", key=f"{K}delete_yes", icon=":material/delete:",
                  on_click=_on_delete, args=(preset,))
        st.button("Cancel", key=f"{K}delete_no", on_click=_on_cancel_delete)


# ------------------------------------------------------------------ drawing
def _report() -> None:
    for kind, words in st.session_state.pop(REPORT, []):
        with st.container(key=f"{K}report_{kind}_{abs(hash(words)) % 10**8}"):
            getattr(st, kind)(escape_md(words))


def _one(preset: Preset) -> None:
    pid = preset.preset_id or ""
    title = shorten(preset.name, 70) + (f" · {', '.join(preset.tags)}" if preset.tags else "")
    with st.expander(escape_md(title), icon=":material/bookmark:"):
        st.text(shorten(preset.request.prompt, 300))
        st.caption(escape_md(preset_controls.describe(preset)))
        with st.container(horizontal=True):
            st.button("Open in Compose", key=f"{K}compose_{pid}", icon=":material/edit_note:",
                      on_click=_on_open, args=(pid, COMPOSE_PAGE))
            st.button("Start a Compare grid", key=f"{K}grid_{pid}", icon=":material/compare:",
                      on_click=_on_open, args=(pid, COMPARE_PAGE))
            st.button("Delete…", key=f"{K}delete_{pid}", icon=":material/delete:", on_click=_on_ask_delete,
                      args=(pid,))
        if _rename_key(pid) not in st.session_state:
            st.session_state[_rename_key(pid)] = preset.name
        if _tags_key(pid) not in st.session_state:
            st.session_state[_tags_key(pid)] = ", ".join(preset.tags)
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.text_input("Name", key=_rename_key(pid))
            st.button("Rename", key=f"{K}do_rename_{pid}", on_click=_on_rename, args=(pid,))
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.text_input("Tags", key=_tags_key(pid), placeholder="comma-separated")
            st.button("Save tags", key=f"{K}do_tags_{pid}", on_click=_on_retag, args=(pid,))


def render(services: Any) -> None:
    _report()
    listed = preset_controls.picker_list(services)
    if listed:
        for preset in listed:
            _one(preset)
    asked = st.session_state.get(CONFIRM)
    if asked and (doomed := services.ledger.get_preset(asked)) is not None:
        _confirm_delete(doomed)
    all_presets = services.ledger.list_presets()
    st.subheader("Export and import")
    st.download_button("Export all as JSON", presets.export_json(all_presets), file_name="presets.json",
                       mime="application/json", icon=":material/download:", key=f"{K}export",
                       disabled=not all_presets, on_click="ignore")
    st.file_uploader("Import a presets file", type=["json"], key=IMPORT_FILE,
                     help=f"A file exported from this app (format version {presets.VERSION}), at most "
                          f"{presets.MAX_FILE_BYTES // 1_000_000} MB. Each preset is checked like a run; "
                          "duplicates (same name and settings) are skipped.")
    st.button("Import", key=f"{K}import", icon=":material/upload:", on_click=_on_import)
