"""Continue a finished run from one of its frames: the card's buttons, the frame scrubber, Compose's note.

Why a dialog with a scrubber: the last frame is what people usually continue from, but a clip often ends
on a blur or a turn; any frame can be chosen on a slider over the video's own frame times, and the chosen
frame is shown at its full size (cut on the server from our archived MP4, lib/chains.py) before it is
used. Pressing a button spends nothing: the frame is uploaded (deduplicated) and Compose opens with the
same settings and that frame; Generate there is an ordinary press (rules, price, one press one charge),
and the run it makes is linked as the next shot.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from lib import chains
from lib.contract import ASPECTS, VideoRequest
from lib.ledger import COMPLETED, Run
from lib.ledger.chains import FIRST, LAST
from lib.ui import page_script, state, who
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.services import Services

PENDING = "chain_pending"   # {"parent_id", "url", "role", "frame_time", "notes"}: the frame Compose holds
SEQUENCE_PAGE = "pages/sequence.py"
ROLE_WORDS = {FIRST: "first frame", LAST: "last frame"}


def card_buttons(services: Services, run: Run, prefix: str) -> None:
    """A finished, archived run's "Continue from a frame" (and "Sequence" when it is a later shot)."""
    if run.state != COMPLETED or not run.video_path or not run.request.prompt:
        return
    if st.button("Continue from a frame", key=f"{prefix}_chain_{run.run_id}", icon=":material/start:",
                 help="Pick a frame of this video (the last one by default) and open Compose with it as "
                      "the next shot's first frame, or as a new shot's last frame, with the same settings. "
                      "Free: nothing is sent until you press Generate."):
        frame_dialog(run.run_id)
    if services.ledger.chain_link(run.run_id) is not None:
        st.button("Sequence", key=f"{prefix}_sequence_{run.run_id}", icon=":material/movie:",
                  help="The shots of this chain up to this one, played as one, with its own share link "
                       "and one-file export.", on_click=open_sequence, args=(run.run_id,))


def open_sequence(run_id: str) -> None:
    """Callback: the sequence ending at this run (made on first use), on its own page."""
    seq = state.services().ledger.sequence_for(run_id)
    state.navigate(SEQUENCE_PAGE, {"id": seq.sequence_id})


@st.dialog("Continue from a frame", width="large")
def frame_dialog(run_id: str) -> None:
    run = state.services().ledger.get(run_id)
    if run is None:
        st.error("This run is no longer in the ledger.", icon=":material/error:")
        return
    scrubber(state.services(), run, key=f"chain_{run_id}")


def scrubber(services: Services, run: Run, *, key: str) -> None:
    """The slider over the video's frames, the chosen frame at full size, and the two ways to use it."""
    actor = who.current(services)
    try:
        chains.check_may_continue(services, run, actor)
        times = chains.frame_times(services, run)
    except chains.ChainError as exc:
        st.error(escape_md(str(exc)), icon=":material/error:")
        return
    ss = st.session_state
    slider = f"{key}_frame"
    if ss.get(slider) not in range(len(times)):
        ss[slider] = len(times) - 1  # the last frame, unless one was chosen
    with st.container(key=f"{key}_scrubber"):
        index = st.select_slider("Frame", options=list(range(len(times))), key=slider,
                                 format_func=lambda i: f"{times[i]:.2f} s",
                                 help="The last frame is chosen first; drag to any frame of the video.")
        try:
            found = chains.cut_frame(services, run, times[index], actor=actor)
        except chains.ChainError as exc:
            st.error(escape_md(str(exc)), icon=":material/error:")
            return
        with st.container(key=f"{key}_picture", horizontal_alignment="center"):
            st.image(found.data, width="content")  # the full-size JPEG; CSS below fits it on screen
        # at most half the window high, so the buttons stay in view on a laptop; the file keeps every pixel
        page_script.style(f".st-key-{key}_picture img {{max-height: 50vh; max-width: 100%; width: auto; "
                          "object-fit: contain;}")
        last = " (the last frame)" if index == len(times) - 1 else ""
        st.caption(f"Frame {index + 1} of {len(times)} at {found.time:.2f} s{last} · full size "
                   f"{found.width}×{found.height} px, as it will be sent.")
    parent_aspect = run.request.effective_aspect
    with st.container(horizontal=True, gap="medium"):
        aspect = st.segmented_control("Next shot's aspect ratio", ASPECTS, default=parent_aspect,
                                      key=f"{key}_aspect") or parent_aspect
        fit = "crop"
        if aspect != parent_aspect:
            fit = st.segmented_control("Make the frame fit", ["crop", "pad"], default="crop",
                                       format_func=lambda f: {"crop": "Crop the middle",
                                                              "pad": "Pad with bars"}[f],
                                       key=f"{key}_fit") or "crop"
    errors = f"{key}_error"
    if ss.get(errors):
        st.error(escape_md(ss[errors]), icon=":material/error:")
    with st.container(horizontal=True, key=f"{key}_buttons"):
        first = st.button("Continue from this frame", type="primary", icon=":material/start:",
                          key=f"{key}_use_first")
        last_pressed = st.button("Use as last frame", icon=":material/last_page:", key=f"{key}_use_last",
                                 help="Open Compose with this frame as the END of a new shot that leads "
                                      "into this one (it needs a first frame too).")
    st.caption("Free: this uploads the frame and fills Compose; the price shows on Generate there.")
    if first or last_pressed:
        use(services, run, times[index], FIRST if first else LAST, aspect=aspect, fit=fit, errors=errors)


def use(services: Services, run: Run, at: float, role: str, *, aspect: str, fit: str, errors: str) -> None:
    """Cut, fit and upload the frame, then open Compose with it; on a failure the words stay here and
    nothing else changes (the form, the run, the ledger)."""
    try:
        prepared = chains.prepare(services, run, at, role, aspect=aspect, fit=fit,
                                  actor=who.current(services))
    except chains.ChainError as exc:
        st.session_state[errors] = str(exc)
        st.rerun(scope="fragment")
        return
    st.session_state.pop(errors, None)
    state.request_restore(prepared.request)
    st.session_state[PENDING] = {"parent_id": prepared.parent_id, "url": prepared.url, "role": role,
                                 "frame_time": prepared.frame_time, "notes": prepared.notes}
    state.navigate("app.py")


# ------------------------------------------------------------------ Compose's side
def compose_note(request: VideoRequest) -> None:
    """Above the form: which run and frame the next shot continues, while the form still holds it."""
    pending = st.session_state.get(PENDING)
    if not pending:
        return
    slot = 0 if pending.get("role") == FIRST else 1
    if len(request.image_urls) <= slot or request.image_urls[slot] != pending.get("url"):
        return  # the frame was removed or replaced: Generate makes an ordinary run, so say nothing
    with st.container(key="compose_chain_note"):
        role = ROLE_WORDS.get(pending.get("role", FIRST), "frame")
        at = float(pending.get("frame_time") or 0)
        words = (f"Next shot of a chain: the {role} is the frame at {at:.2f} s of the run you chose. "
                 "Generate links the new run to it; the Sequence button on its card plays the shots as one.")
        st.info(escape_md(words), icon=":material/start:")
        for note in pending.get("notes") or []:
            st.caption(escape_md(note))
        st.button("Don't link", key="compose_chain_unlink", icon=":material/link_off:", type="tertiary",
                  on_click=lambda: st.session_state.pop(PENDING, None),
                  help="Keep the frame but make an ordinary run, not the next shot of the chain.")


def after_generate(services: Services, run_id: str, request: VideoRequest) -> None:
    """Compose's Generate made `run_id`: link it as the next shot when it carries the chosen frame."""
    pending: dict[str, Any] | None = st.session_state.get(PENDING)
    try:
        link = chains.link_if_used(services, run_id, pending, request)
    except Exception:  # noqa: BLE001 - the run is made and kept; only its link is missing
        st.toast("The run was made, but it could not be linked to the chain. It is kept in History.",
                 icon=":material/link_off:")
        return
    if link is not None:
        st.session_state.pop(PENDING, None)
        st.toast(f"Linked as shot {link.position} of the chain.", icon=":material/start:")
