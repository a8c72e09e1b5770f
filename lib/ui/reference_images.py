"""Reference images (TOAPIS_CONTRACT=latest): pictures that steer the look of a video without being a frame.

Why apart from the frame slots: the newest kling-v3 page gives every image a role. First and last frame
keep their slots (sent as `image_with_roles`); anything else is a reference (`reference_images`), which
the page says is "not automatically converted into first/last frames". Each file goes through the same
checks and the same deduplicated upload as a frame (lib.playground.upload_frame), at once, so its words
show before any press, and a refused file blocks the spending buttons instead of being left out quietly.
"""
from __future__ import annotations

import functools
from typing import Any

import streamlit as st

from lib import images, links, playground
from lib.contract import IMAGE_EXTENSIONS, IMAGE_RULES_TEXT, MAX_IMAGE_MB, MAX_REFERENCES, Problem
from lib.ui import state
from lib.ui.text import escape_md, shorten

ROLE_HELP = ("Role: reference. It guides the subject, the look and the style; the video does not start or "
             "end on it (that is what the first and last frame are for). " + IMAGE_RULES_TEXT)


def _key(prefix: str) -> str:
    return f"{prefix}refs"


def _file_key(prefix: str) -> str:
    return f"{prefix}ref_files"


def entries(prefix: str) -> list[dict[str, Any]]:
    """This form's reference images: {"name", "url", "sha", "problems"} each, in the order chosen."""
    return list(st.session_state.get(_key(prefix)) or [])


def urls(prefix: str) -> tuple[str, ...]:
    """The URLs a run sends: every reference image that passed its checks and uploaded."""
    return tuple(e["url"] for e in entries(prefix) if e.get("url"))


def problems(prefix: str) -> list[Problem]:
    return [Problem(**p) for e in entries(prefix) for p in e.get("problems", [])]


def refused(prefix: str) -> bool:
    """A chosen reference failed its checks: a press must not send the run without it."""
    return any(p.level == "error" for p in problems(prefix))


def restore(prefix: str, refs: tuple[str, ...]) -> None:
    """The reference images of a run being re-run (already uploaded: their URLs are kept as they are)."""
    st.session_state[_key(prefix)] = [
        {"name": shorten(u, 40) if links.is_public_url(u) else "the run's reference image",
         "url": u, "sha": None, "problems": []} for u in refs]


def _on_files(prefix: str) -> None:
    """Check and upload each newly chosen file (a file already in the list is not sent twice)."""
    ss = st.session_state
    chosen = ss.get(_file_key(prefix)) or []
    kept = entries(prefix)
    known = {e.get("sha") for e in kept}
    services = state.services()
    for uploaded in chosen:
        data = uploaded.getvalue()
        sha = images.content_hash(data)
        if sha in known:
            continue
        known.add(sha)
        number = len(kept) + 1
        if number > MAX_REFERENCES:
            kept.append({"name": uploaded.name, "url": None, "sha": sha, "problems": [{
                "field": "references", "level": "error",
                "message": f"{uploaded.name}: at most {MAX_REFERENCES} reference images — remove one "
                           "first."}]})
            continue
        url, found = playground.upload_frame(services, data, uploaded.name, "reference_image")
        if url:
            images.preview(sha, functools.partial(bytes, data))  # made once, while the bytes are at hand
        kept.append({"name": uploaded.name, "url": url, "sha": sha,
                     "problems": [{"field": "references", "message": p.message, "level": p.level}
                                  for p in found]})
    ss[_key(prefix)] = kept


def _remove(prefix: str, index: int) -> None:
    kept = entries(prefix)
    if 0 <= index < len(kept):
        kept.pop(index)
    st.session_state[_key(prefix)] = kept


def draw(prefix: str) -> None:
    """The uploader, one line per reference image (its role, a preview, Remove) and its words."""
    st.file_uploader(f"Reference images (up to {MAX_REFERENCES})", type=list(IMAGE_EXTENSIONS),
                     accept_multiple_files=True, key=_file_key(prefix), on_change=_on_files, args=(prefix,),
                     max_upload_size=MAX_IMAGE_MB, help=ROLE_HELP)
    kept = entries(prefix)
    if not kept:
        st.caption("No reference images: the video follows the prompt (and any frames) alone.")
        return
    with st.container(key=f"{prefix}refs_list", horizontal=True, gap="small"):
        for i, entry in enumerate(kept):
            with st.container(border=True, width=150, key=f"{prefix}ref_{i}"):
                if entry.get("url") and entry.get("sha"):
                    thumb = images.preview(entry["sha"], lambda: b"")
                    if thumb is not None:
                        st.image(thumb, width="content")
                state_word = "reference" if entry.get("url") else "not used"
                st.caption(escape_md(f"{shorten(entry['name'], 18)} · role: {state_word}"))
                st.button("Remove", key=f"{prefix}ref_remove_{i}", type="tertiary", icon=":material/close:",
                          on_click=_remove, args=(prefix, i))
    for p in problems(prefix):
        if p.level == "warning":
            st.warning(escape_md(p.message), icon=":material/warning:")
        else:
            st.error(escape_md(p.message), icon=":material/error:")
