"""Play a run's video from the app's own origin, never as bytes held in the session.

Why: `st.video(bytes)` copies the whole MP4 into every viewer's memory and serves it without a stable
URL. The archive folder is served by Streamlit's static serving (`/app/static/…`, with HTTP Range, so
seeking works), and st.video only passes a string through untouched when it is an absolute http(s) URL,
so the archive path is joined to this page's origin (from st.context.url).
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from lib.ledger import COMPLETED
from lib.playground import format_seconds


def origin() -> str:
    """scheme://host:port of the page being viewed (the server's own address when unknown)."""
    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - no browser context (bare script run): fall back
        url = ""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    port = st.get_option("server.port") or 8501
    return f"http://127.0.0.1:{port}"


def archive_url(services: Any, path: str) -> str:
    """Absolute same-origin URL of an archived file (honours server.baseUrlPath)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    rel = services.archive.public_url(path)
    prefix = f"/{base}" if base else ""
    return f"{origin()}{prefix}{rel}"


def video(services: Any, run: Any, *, autoplay: bool = False, muted: bool = True, loop: bool = False) -> bool:
    """Draw the run's player; True when there was something to play."""
    synthetic = services.settings.uses_local_gateway
    if run.video_path:
        st.video(archive_url(services, run.video_path), autoplay=autoplay, muted=muted, loop=loop)
        note = "Archived copy, served by this app."
    elif run.state == COMPLETED and run.video_url and run.error_code is None:  # none the archive refused
        st.video(run.video_url, autoplay=autoplay, muted=muted, loop=loop)
        if run.expires_at:
            left = run.expires_at - time.time()
            note = (f"Not archived yet: the gateway's link expires in {format_seconds(left)}."
                    if left > 0 else "Not archived and the gateway's link has expired.")
        else:
            note = "Not archived yet: playing from the gateway's link."
    else:
        return False
    if synthetic:
        note += " Synthetic video from the local gateway (not made by Kling)."
    st.caption(note)
    return True
