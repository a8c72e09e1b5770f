"""Presets: the prompt library. Rename, retag, delete, open in Compose or Compare, export and import JSON.

Why this page only lays out: the list and its actions live in lib/ui/presets_view.py, the rules and the
file format in lib/presets.py, the table in lib/ledger/presets.py.
"""
from __future__ import annotations

import streamlit as st

from lib.ui import frame, presets_view

services = frame.render("Presets", icon=":material/bookmarks:")
st.title("Presets")
st.caption("Named prompts with their settings and tags. Saving or opening one costs nothing and sends "
           "nothing; save them from Compose with “Save as preset”.")
presets_view.render(services)
