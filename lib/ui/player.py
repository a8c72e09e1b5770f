"""Play a run's video from the app's own origin, never as bytes held in the session.

Why: `st.video(bytes)` copies the whole MP4 into every viewer's memory and serves it without a stable
URL. Archived files are served by the app's own route (`/archive/…`, lib/archive_route.py, with HTTP Range,
so seeking works) from wherever the archive is kept. st.video passes a string through untouched only when
it is an absolute http(s) URL (any other string is read as a file on the server), so the route's path is
joined to this page's origin (from st.context.url). What is shown for a run that is not archived, and when
the gateway's own link may be offered, is lib/playback.py's rule.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import streamlit as st

from lib import playback
from lib.durations import format_seconds
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.ledger import Run
    from lib.services import Services


def origin() -> str:
    """scheme://host:port of the page being viewed (the server's own address when unknown)."""
    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - no browser context (bare script run): fall back
        url = ""
    parts = urlsplit(url)
    found = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme in ("http", "https") and parts.netloc and playback.vetted_http_url(found):
        return found  # the browser's own origin (a malformed one is not trusted: it reaches st.video)
    port = st.get_option("server.port") or 8501
    return f"http://127.0.0.1:{port}"


def archive_url(services: Services, path: str) -> str:
    """Absolute same-origin URL of an archived file (honours server.baseUrlPath)."""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    rel = services.archive.public_url(path)
    prefix = f"/{base}" if base else ""
    return f"{origin()}{prefix}{rel}"


def download_url(services: Services, path: str) -> str:
    """The archive route's URL that downloads the file (Content-Disposition: attachment)."""
    return archive_url(services, path) + "?download=1"


def video(services: Services, run: Run, *, autoplay: bool = False, muted: bool = True, loop: bool = False,
          key: str = "player") -> bool:
    """The video area of a finished run: our archived copy, "Saving…", or words (with the gateway's link
    only when archiving failed). True when a player was drawn. `key` prefixes the one widget (a link)."""
    shown = playback.playback(run, time.time())
    if shown.kind == "none":
        return False
    if shown.kind == "saving":
        st.info(shown.message or playback.SAVING, icon=":material/hourglass_top:")
        return False
    if shown.kind == "archived":
        try:
            url = archive_url(services, shown.archive_key or "")
        except ValueError:  # a stored key the route does not serve: say so, never guess a source
            st.warning("This run's archived file cannot be served by this app.", icon=":material/error:")
            return False
        st.video(url, autoplay=autoplay, muted=muted, loop=loop)
        note = "Archived copy, served by this app."
    else:
        failed = shown.kind == "failed"
        (st.error if failed else st.warning)(escape_md(shown.message or ""),
                                            icon=":material/error:" if failed else ":material/info:")
        if not shown.gateway_url:
            return False
        left = ("" if shown.expires_in is None
                else f" Its link expires in {format_seconds(shown.expires_in)}.")
        if not failed:  # archiving is still being retried: a link, so no player swaps its source later
            st.link_button("Watch the gateway's copy meanwhile", shown.gateway_url,
                           icon=":material/open_in_new:", key=f"{key}_gateway_{run.run_id}")
            st.caption("Playing from the gateway, not from this app." + left)
            return False
        st.video(shown.gateway_url, autoplay=autoplay, muted=muted, loop=loop)
        note = "Not archived: playing the gateway's own copy." + left
    if services.settings.uses_local_gateway:
        note += " Synthetic video from the local gateway (not made by Kling)."
    st.caption(note)
    return True
