"""The Sequence view (/sequence?id=<sequence id>): a chain's shots in order, played as one, exported as one.

Why public, like /run?id=…: a sequence is made to be shown. Its id is its own random token (not a run id),
so the link shows these shots and nothing else: no spend, no other run, no owner's account. Export is the
one action, and it spends nothing: one MP4 is made once per set of shots (a second press, in any tab,
reuses it; lib/chains.py) and archived like any video, so the single player below plays it from the
app's own /archive/ route with seeking.
"""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

import streamlit as st

from lib import chains, history, query
from lib.durations import format_seconds
from lib.ledger import COMPLETED
from lib.ui import player, share_links
from lib.ui.card import describe, state_badge
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.ledger import ChainLink, Run, SequenceRow
    from lib.services import Services

ERROR = "sequence_export_error"
# One <video> that moves to the next shot when one ends. Only same-origin archive URLs built on the server
# reach it, as one JSON literal ("</" escaped); nothing a person typed.
_PLAYLIST = """<div><video controls playsinline preload="metadata" src="__FIRST__" data-shot="0"
 style="width:100%;max-height:70vh;background:#000;border-radius:0.5rem"></video>
<p class="kp-seq-label" style="margin:0.25rem 0 0;font-size:0.875rem;opacity:0.7">Shot 1 of __COUNT__</p>
</div>
<script>(() => {
  const cfg = __CFG__;
  const deadline = Date.now() + 5000;
  const hook = () => {
    const root = document.querySelector('.st-key-sequence_playlist');
    const video = root && root.querySelector('video');
    if (!video) { if (Date.now() < deadline) setTimeout(hook, 100); return; }
    if (video.dataset.hooked) return;
    video.dataset.hooked = '1';
    const label = root.querySelector('.kp-seq-label');
    video.addEventListener('ended', () => {
      const next = Number(video.dataset.shot) + 1;
      if (next >= cfg.urls.length) return;
      video.dataset.shot = String(next);
      video.src = cfg.urls[next];
      if (label) label.textContent = 'Shot ' + (next + 1) + ' of ' + cfg.urls.length;
      video.play().catch(() => {});
    });
  };
  hook();
})();</script>"""


def render(services: Services) -> None:
    reader = query.QueryReader(st.query_params)
    ident = reader.ident("id", quiet=True)
    seq = services.ledger.sequence(ident) if ident else None
    runs, links = chains.shots(services.ledger, seq.last_run_id) if seq else ([], {})
    st.title("Sequence")
    if seq is None or not runs:
        st.info(chains.SEQUENCE_NOT_FOUND, icon=":material/link_off:")
        return
    seconds = sum(r.duration or 0 for r in runs)
    st.caption(escape_md(f"{len(runs)} shots · about {seconds} s · each shot continues from a frame of the "
                         "one before it"))
    exported = seq.video_path if seq.export_signature == chains.signature(runs) else None
    with st.container(key="sequence_player"):
        _player(services, seq, exported, runs)
    _actions(services, seq, exported, runs)
    st.subheader("Shots")
    per_row = min(3, len(runs))  # side by side on a desktop; Streamlit stacks columns on a phone
    for start in range(0, len(runs), per_row):
        for col, (i, run) in zip(st.columns(per_row), enumerate(runs[start:start + per_row], start + 1),
                                 strict=False):
            with col:
                _shot(services, i, run, links.get(run.run_id))


def _player(services: Services, seq: SequenceRow, exported: str | None, runs: list[Run]) -> None:
    if exported and services.archive.exists(exported):
        with st.container(key="sequence_file"):
            st.video(player.archive_url(services, exported))
        how = "copied shot after shot" if seq.export_mode == "copy" else "re-encoded to one size"
        st.caption(escape_md(f"One file of {format_seconds(seq.duration or 0)} ({how})."))
        sound = [r.request.audio is True for r in runs]
        if any(sound) and not all(sound):  # lib/frames_cut.join keeps each shot's sound in its place
            st.caption("Shots made without Sound are silent in this file; the others keep their sound.")
        return
    words = chains.not_ready(runs)
    if words:
        st.info(escape_md(words), icon=":material/hourglass_top:")
        return
    # until the export exists, one player plays the shots' archived files one after another
    urls = [player.archive_url(services, str(r.video_path)) for r in runs]
    with st.container(key="sequence_playlist"):
        st.html(_PLAYLIST.replace("__FIRST__", html.escape(urls[0], quote=True))
                .replace("__COUNT__", str(len(urls)))
                .replace("__CFG__", json.dumps({"urls": urls}).replace("</", "<\\/")),
                unsafe_allow_javascript=True)
    st.caption("The shots play one after another here; Export one MP4 makes them one file (kept, and "
               "playable anywhere).")


def _actions(services: Services, seq: SequenceRow, exported: str | None, runs: list[Run]) -> None:
    ss = st.session_state
    with st.container(horizontal=True, gap="small", key="sequence_actions"):
        if exported is None:
            st.button("Export one MP4", key="sequence_export", type="primary", icon=":material/movie:",
                      disabled=chains.not_ready(runs) is not None, on_click=_on_export,
                      args=(seq.sequence_id,),
                      help="Join the shots into one MP4 (no quality lost when they match), kept in the "
                           "archive. Free; a second press reuses the file.")
        elif services.archive.exists(exported):
            st.link_button("Download", player.download_url(services, exported), icon=":material/download:",
                           key="sequence_download")
        with st.popover("Share", icon=":material/link:", key="sequence_share"):
            st.caption("Anyone with this link sees these shots (read-only); pasted into a chat it shows a "
                       "preview. Copy it with the copy button beside it:")
            st.code(share_links.short_url(services, seq.sequence_id), language=None, wrap_lines=True)
    if ss.get(ERROR):
        st.error(escape_md(ss[ERROR]), icon=":material/error:")


def _on_export(sequence_id: str) -> None:
    from lib.ui import state

    st.session_state.pop(ERROR, None)
    try:
        with st.spinner("Joining the shots…"):
            chains.export(state.services(), sequence_id)
    except chains.ChainError as exc:
        st.session_state[ERROR] = str(exc)


def _shot(services: Services, index: int, run: Run, link: ChainLink | None) -> None:
    with st.container(border=True, key=f"sequence_shot_{index}"):
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.markdown(f"**Shot {index}**")
            state_badge(run)
            st.caption(escape_md(describe(run)))
        if link is not None:
            role = "first" if link.role == "first" else "last"
            st.caption(escape_md(f"Its {role} frame is the frame at {link.frame_time:.2f} s of the shot it "
                                 f"{'continues' if role == 'first' else 'leads into'}."))
        if history.has_settings(run):
            st.text(run.request.prompt)
        if run.state == COMPLETED:
            player.video(services, run, key=f"sequence_{index}")
