"""What a Share popover offers: the short link that unfurls (`/s/<id>`) and, for a run, its embed code.

Why one drawing for cards, History, Compare and the share view: the copyable link is the short link
everywhere (it previews in chats and opens the same share view), and the embed code is offered only once
there is a saved video to play. Links are absolute: PLAYGROUND_PUBLIC_URL when set, else this page's origin.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from lib import unfurl
from lib.ui import player


def base(services: Any) -> str:
    """The origin links are given with: the pinned public address, else the one this page was opened at."""
    pinned = getattr(services.settings, "public_url", None)
    return pinned or player.origin()


def _url(services: Any, path: str) -> str:
    return unfurl.join(base(services), st.get_option("server.baseUrlPath") or "", path)


def short_url(services: Any, ident: str) -> str:
    return _url(services, unfurl.short_path(ident))


def embed_url(services: Any, ident: str) -> str:
    return _url(services, unfurl.embed_path(ident))


def run_link(services: Any, run: Any, *, note: str | None = None) -> None:
    """Inside a popover: the run's short link, then its embed code (or why there is none yet)."""
    st.caption(note or "Anyone with this link sees this run (read-only); pasted into a chat it shows a "
                       "preview. Copy it with the copy button beside it:")
    # wrapped, so the whole link shows on a phone; st.code's own copy button copies it
    st.code(short_url(services, run.run_id), language=None, wrap_lines=True)
    subject = unfurl.run_subject(run)
    if subject is None:
        return
    st.caption("Embed code: a plain player for a web page, docs or slides.")
    if subject.video_key:
        st.code(unfurl.embed_code(embed_url(services, run.run_id), subject), language="html",
                wrap_lines=True)
    elif subject.status == unfurl.PENDING:
        st.caption("It appears here once the video is saved.")
    else:
        st.caption("This run has no video to embed.")


def grid_link(services: Any, group_id: str, *, note: str | None = None) -> None:
    """Inside a popover: the grid's short link."""
    st.caption(note or "Anyone with this link sees the whole grid (read-only) and can re-run it; pasted "
                       "into a chat it shows a preview:")
    st.code(short_url(services, group_id), language=None, wrap_lines=True)
