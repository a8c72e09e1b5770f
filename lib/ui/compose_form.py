"""The Compose form: every kling-v3 setting, checked live, priced live, submitted at most once per press.

Why presses are judged in time, not by widget: a person clicking Generate five times means one video,
however the clicks fall against Streamlit's reruns. Each press goes through this tab's press memory
(lib.presses via lib.ui.press): the same button with the same settings within the window (a setting,
3 s by default) is the same press and gets the same run ids back, which the ledger turns into nothing
new; the page says "Already sent". The same settings after the window are a new take, and the page
says that too. The ids are remembered before anything is written, so a rerun that cuts a press short
cannot turn the next click into a second run.

Submits run in the button's on_click callback, before the script draws the fields, so the problems of a
press appear next to their fields in the same rerun and nothing is written when any is an error.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import streamlit as st
from streamlit_extras.image_crop import image_crop

from lib import (
    contract,
    frame_fix,
    images,
    links,
    money,
    pasted_image,
    playground,
    presses,
    query,
    spend_labels,
    takes,
)
from lib.contract import (
    ASPECTS,
    DURATIONS,
    FIFTEEN_WITH_IMAGES,
    IMAGE_EXTENSIONS,
    IMAGE_RULES_TEXT,
    MAX_I2V_DURATION,
    MAX_IMAGE_MB,
    MAX_PROMPT,
    MODE_LABELS,
    MODES,
    Problem,
    VideoRequest,
)
from lib.ui import chain_controls, latest_fields, page_script, press, reference_images, state, who
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.services import Services

K = "compose_"
PROMPT, NEGATIVE, MODE, DURATION, ASPECT, WATERMARK = (
    f"{K}prompt", f"{K}negative", f"{K}mode", f"{K}duration", f"{K}aspect", f"{K}watermark",
)
FRAMES = ("first_frame", "last_frame")
FRAME_LABELS = {"first_frame": "First frame", "last_frame": "Last frame"}
TRIED, PROBLEMS, REFUSED, EXAMPLE, NOTE, REVEAL = (
    f"{K}tried", f"{K}problems", f"{K}refused", f"{K}example", f"{K}press_note", f"{K}reveal",
)
SOUND = f"{K}sound"  # TOAPIS_CONTRACT=latest only
TAKES = f"{K}takes"  # 1–4 runs of these settings per press (lib/takes.py)
GENERATE, PAIR = "generate", "pair"   # press-memory actions of the two buttons
IMAGE_TYPES = list(IMAGE_EXTENSIONS)  # the uploader's list is the rules' list (lib/contract.py)
RESTORED_NAME = "the image of the run it came from"
CROP_VIEW_SIDE = 960  # px: the picture the crop dialog shows (fractions of it crop the original)
PREVIEW_MAX_H = 80  # px: a frame's preview, whatever the image's shape
# px: the preview's slot, drawn at this height with or without a frame (image, one caption row, padding),
# so adding or removing a frame never moves Generate and its price
PREVIEW_SLOT_H = 160
UPLOADER_MIN_H = 100  # px: the empty drop zone's height at both widths (measured in Chromium)
EMPTY_SLOT = {"first_frame": "No first frame: the video starts from the prompt alone.",
              "last_frame": "No last frame (optional): the model chooses how the video ends."}

EXAMPLES = {
    "Fox in snow": "A red fox trotting through fresh snow at dawn, low tracking shot, soft golden light, "
                   "breath visible in the cold air",
    "Neon city": "Rain-soaked neon street in Tokyo at night, slow dolly forward, reflections on wet asphalt, "
                 "cinematic, shallow depth of field",
    "Ocean drone": "Aerial drone shot over turquoise ocean waves breaking on a black sand beach, "
                   "smooth forward motion, midday sun",
    "Coffee macro": "Macro shot of milk swirling into black coffee in a glass cup, slow motion, "
                    "warm window light",
}


def url_key(frame: str) -> str:
    return f"{K}{frame}_url"


def file_key(frame: str) -> str:
    return f"{K}{frame}_file"


def upload_key(frame: str) -> str:
    return f"{K}{frame}_upload"


def init_state() -> None:
    """Defaults for every form key, set once per session (widgets then own their values)."""
    ss = st.session_state
    defaults: dict[str, Any] = {
        PROMPT: "", NEGATIVE: "", MODE: "std", DURATION: 5, ASPECT: "16:9", WATERMARK: False,
        url_key("first_frame"): "", url_key("last_frame"): "", SOUND: False, TAKES: 1,
    }
    for key, value in defaults.items():
        if key not in ss:
            ss[key] = value


def app_contract() -> str:
    """TOAPIS_CONTRACT of this app: which fields the form offers and sends."""
    return state.services().settings.contract


def apply_restore(request: VideoRequest) -> list[str]:
    """Put every setting of `request` into the form keys (before the widgets draw); notes for the user."""
    ss = st.session_state
    notes: list[str] = []
    offered = contract.durations_for(app_contract())
    latest = app_contract() == contract.LATEST
    if not latest and (request.contract == contract.LATEST or request.uses_latest_fields):
        notes.append(f"That run was {contract.LATEST_ONLY_WORDS}: its Sound and reference images are not "
                     "filled in, and a duration other than 5, 10 or 15 s becomes 5 s. Set "
                     "TOAPIS_CONTRACT=latest to re-run it as it was.")
    ss[SOUND] = bool(latest and request.audio is True)
    reference_images.restore(K, request.references if latest else ())
    prompt = request.prompt or ""
    if len(prompt) > MAX_PROMPT:
        notes.append(f"The prompt was {len(prompt):,} characters; it was cut to {MAX_PROMPT:,}.")
        prompt = prompt[:MAX_PROMPT]
    ss[PROMPT] = prompt
    ss[NEGATIVE] = (request.negative_prompt or "")[:MAX_PROMPT]
    ss[MODE] = request.effective_mode if request.effective_mode in MODES else "std"
    ss[DURATION] = request.effective_duration if request.effective_duration in offered else 5
    ss[ASPECT] = request.effective_aspect if request.effective_aspect in ASPECTS else "16:9"
    # a link may carry values the form has no option for: say which were replaced (never echo the text)
    if request.effective_mode not in MODES:
        notes.append("The mode in the link is not one kling-v3 offers; std (720p) is selected.")
    if request.effective_duration not in offered:
        notes.append(f"The duration {request.effective_duration!r} s is not offered here; 5 s is selected.")
    if request.effective_aspect not in ASPECTS:
        notes.append("The aspect ratio in the link is not 16:9, 9:16 or 1:1; 16:9 is selected.")
    ss[WATERMARK] = bool(request.watermark)
    for i, frame in enumerate(FRAMES):
        url = request.image_urls[i] if i < len(request.image_urls) else ""
        ss.pop(upload_key(frame), None)
        if url and not links.is_public_url(url):
            # an earlier upload (an address of this machine): kept as the frame, never put in the paste box
            ss[url_key(frame)] = ""
            ss[upload_key(frame)] = {"name": RESTORED_NAME, "url": url, "sha": None, "problems": []}
        else:
            ss[url_key(frame)] = url
    if len(request.image_urls) > len(FRAMES):
        notes.append(f"{len(request.image_urls)} images were given; only the first two are used.")
    for key in (TRIED, PROBLEMS, REFUSED, NOTE):
        ss.pop(key, None)
    return notes


def restore_from_request_sources(services: Services, query_params: Any) -> list[str]:
    """A pending re-run from another page, `?rerun=<run_id>`, or a Compose link with the settings.

    The link is read through lib.query: what it cannot use is left out with a note, never raised.
    """
    request = state.take_restore()
    reader = query.reader(query_params)
    used: list[str] = []
    if request is None and reader.has("rerun"):
        run_id = reader.ident("rerun", quiet=True)
        run = services.ledger.get(run_id) if run_id else None
        used = ["rerun"]
        if run is None or run.unreadable:
            return ["That run was not found, so nothing was filled in."]
        try:
            request = playground.rerun(services, run, actor=who.current(services))
        except ValueError as exc:  # owners.NotYours: another user's run (its share link is the way)
            return [str(exc)]
    if request is None and reader.has("prompt"):
        request = links.request_from_query(reader)
        used = list(reader.used)
    if request is None:
        return []
    for key in used:
        with contextlib.suppress(KeyError):
            del st.query_params[key]
    return ["Settings restored from the run: change anything, then press Generate.",
            *reader.notes, *apply_restore(request)]


def frame_url(frame: str) -> str:
    """The image a frame sends: a pasted URL, else the uploaded file's URL (which the paste box never
    shows: for the local gateway it is an address of this machine)."""
    ss = st.session_state
    typed = (ss.get(url_key(frame)) or "").strip()
    if typed:
        return typed
    upload = ss.get(upload_key(frame)) or {}
    return str(upload.get("url") or "")


def current_request() -> VideoRequest:
    """The request the form describes right now (always sends mode/duration/aspect explicitly)."""
    ss = st.session_state
    images = tuple(u for u in (frame_url(f) for f in FRAMES) if u)
    if not frame_url("first_frame") and frame_url("last_frame"):
        images = ("", *images)  # a last frame without a first one: validate() names the missing first frame
    negative = ss.get(NEGATIVE) or ""
    latest = app_contract() == contract.LATEST
    return VideoRequest(
        contract=contract.LATEST if latest else contract.V1,
        audio=True if latest and ss.get(SOUND) else None,
        references=reference_images.urls(K) if latest else (),
        prompt=ss.get(PROMPT) or "",
        mode=ss.get(MODE) or "std",
        duration=int(ss.get(DURATION) or 5),
        aspect_ratio=ss.get(ASPECT) or "16:9",
        image_urls=images,
        negative_prompt=negative if negative.strip() else None,
        watermark=True if ss.get(WATERMARK) else None,
    )


def _field_of(problem: Problem) -> str:
    return {"image_urls": "first_frame"}.get(problem.field, problem.field)


def _problems(request: VideoRequest) -> dict[str, list[Problem]]:
    """Live problems by field; "empty prompt" waits for the first press (no scolding a blank form)."""
    ss = st.session_state
    out: dict[str, list[Problem]] = {}
    for p in contract.validate(request):
        if p.field == "prompt" and not request.prompt.strip() and not ss.get(TRIED):
            continue
        if p.field == "first_frame" and p.message.startswith("The first frame URL is empty"):
            p = Problem("last_frame", "A last frame needs a first frame — add a first frame or remove the "
                                      "last one.")
        out.setdefault(_field_of(p), []).append(p)
    for frame in FRAMES:
        upload = ss.get(upload_key(frame))
        if upload and upload.get("problems"):
            out.setdefault(frame, []).extend(Problem(**p) for p in upload["problems"])
        if not any(p.level == "error" for p in out.get(frame, [])):  # the URL's shape first, then its image
            out.setdefault(frame, []).extend(_url_check(frame, fetch=False))
    return out


def _show(problems: dict[str, list[Problem]], field: str) -> None:
    for p in problems.get(field, []):
        if p.level == "warning":
            st.warning(escape_md(p.message), icon=":material/warning:")
        else:
            st.error(escape_md(p.message), icon=":material/error:")


# ------------------------------------------------------------------ callbacks (run before the script)
def _on_example() -> None:
    choice = st.session_state.get(EXAMPLE)
    if choice in EXAMPLES:
        st.session_state[PROMPT] = EXAMPLES[choice]
    st.session_state[EXAMPLE] = None


def _on_file(frame: str) -> None:
    """Check and upload a chosen file at once, so its URL, preview and problems show before Generate."""
    ss = st.session_state
    uploaded = ss.get(file_key(frame))
    previous = ss.pop(upload_key(frame), None)
    if previous and previous.get("url") and ss.get(url_key(frame)) == previous["url"]:
        ss[url_key(frame)] = ""  # a value kept from before uploads stopped filling the paste box
    if uploaded is None:
        return
    data = uploaded.getvalue()
    url, problems = playground.upload_frame(state.services(), data, uploaded.name, frame)
    _keep_upload(frame, uploaded.name, data, url, problems)
    if url is None and frame_fix.fixable(data) and any(
            p.level == "error" for p in contract.check_image(data, frame)):
        ss[upload_key(frame)]["fixable"] = True  # a picture that breaks the rules: offer crop or pad


def _keep_upload(frame: str, name: str, data: bytes, url: str | None, problems: list[Problem],
                 fixed: bool = False) -> None:
    ss = st.session_state
    ss[upload_key(frame)] = {
        "name": name, "url": url, "sha": images.content_hash(data),
        "problems": [{"field": p.field, "message": p.message, "level": p.level} for p in problems],
        **({"fixed": data} if fixed else {}),  # the frame is these bytes, not the chosen file's
    }
    if url:
        ss[url_key(frame)] = ""  # the file is the frame now; a pasted URL would silently win over it


def _drop_upload(frame: str) -> None:
    st.session_state.pop(upload_key(frame), None)


URL_CHECKS = f"{K}url_checks"  # {"<frame> <url>": [problem dicts]}: pasted URLs this session has fetched
MAX_URL_CHECKS = 16


def _pasted(frame: str) -> str | None:
    """The frame's pasted URL, or None when there is none or it is the URL of this session's upload."""
    ss = st.session_state
    url = (ss.get(url_key(frame)) or "").strip()
    upload = ss.get(upload_key(frame)) or {}
    return url if url and upload.get("url") != url else None


def _url_check(frame: str, *, fetch: bool) -> list[Problem]:
    """The pasted URL's problems (lib.pasted_image), fetched once per URL; with fetch=False only what an
    earlier check found, so drawing the form never waits on the network."""
    url = _pasted(frame)
    if url is None:
        return []
    checks: dict[str, list[dict]] = st.session_state.setdefault(URL_CHECKS, {})
    key = f"{frame} {url}"
    if key not in checks:
        if not fetch:
            return []
        fetcher = pasted_image.quick_fetcher(state.services().archive.fetcher)
        found = pasted_image.check_url(fetcher, url, frame)
        while len(checks) >= MAX_URL_CHECKS:
            checks.pop(next(iter(checks)))
        checks[key] = [{"field": p.field, "message": p.message, "level": p.level} for p in found]
    return [Problem(**p) for p in checks[key]]


def _on_url(frame: str) -> None:
    """A URL was pasted (or edited): check it now, so its words show before anything is pressed."""
    _url_check(frame, fetch=True)


def _upload_refused() -> bool:
    """A chosen file failed its local checks, or a pasted URL is not a usable image: Generate must not
    quietly send the run without it, nor pay for a run the gateway cannot make."""
    uploads = [st.session_state.get(upload_key(frame)) or {} for frame in FRAMES]
    if app_contract() == contract.LATEST and reference_images.refused(K):
        return True
    if any(p.get("level") == "error" for upload in uploads for p in upload.get("problems", [])):
        return True
    return any(p.level == "error" for frame in FRAMES for p in _url_check(frame, fetch=True))


def current_takes() -> int:
    """Takes per Generate press (1–4); anything else counts as one (the control offers only 1–4)."""
    value = st.session_state.get(TAKES)
    return value if isinstance(value, int) and takes.count_problem(value) is None else 1


def _note(request: VideoRequest, kind: str, text: str) -> None:
    """Words about the last press, shown under the buttons while the form still holds its settings."""
    digest = presses.fingerprint("form", request.to_dict())
    st.session_state[NOTE] = {"fp": digest, "kind": kind, "text": text}


def _on_generate() -> None:
    ss = st.session_state
    ss[TRIED] = True
    ss.pop(REFUSED, None)
    ss.pop(NOTE, None)
    if _upload_refused():
        return
    request = current_request()
    n = current_takes()
    # one press of N takes is one press: a repeat in the window gets the same group and run ids back
    decision = press.decide(GENERATE, takes.press_inputs(request.to_dict(), n), n_ids=takes.n_ids(n))
    if decision.kind == presses.TOO_SOON:
        _note(request, presses.TOO_SOON, presses.too_soon(decision))
        return
    services = state.services()
    outcome: playground.SubmitOutcome | takes.TakesOutcome
    if n == 1:
        outcome = playground.submit(services, request, run_id=decision.ids[0], source="compose",
                                    actor=who.current(services))
    else:
        outcome = takes.submit_takes(services, request, n, run_ids=decision.ids[1:], group_id=decision.ids[0],
                                     actor=who.current(services))
    press.touch(GENERATE, decision.ids)  # written: a repeat is judged from now (lib.presses.touch)
    if outcome.refused or not outcome.ok:
        press.forget(GENERATE)  # nothing was written: the next press is judged afresh
        if outcome.refused:
            ss[REFUSED] = outcome.refused
        return
    ss[TRIED] = False
    created = any(outcome.created) if isinstance(outcome, takes.TakesOutcome) else outcome.created
    what = "run" if n == 1 else f"set of {takes.plural(n)}"
    if not created:
        where = "see the card below" if n == 1 else "see the strip below"
        _note(request, presses.SAME, presses.already_sent(decision, where))
    elif decision.kind == presses.NEW_TAKE:
        _note(request, presses.NEW_TAKE, presses.new_take(decision, what))
        st.toast(f"New take: another {what} with the same settings, watch it below.", icon=":material/send:")
    else:
        st.toast("Submitted: watch it below." if n == 1 else
                 f"Submitted {takes.plural(n)}: watch them side by side below.", icon=":material/send:")
    if created:  # its card (or its strip of takes) is brought into view on this rerun
        ss[REVEAL] = f"card_{decision.ids[0]}" if n == 1 else f"strip_{decision.ids[0][:10]}"
        # the next shot of a chain: the run, or the first of its takes
        chain_controls.after_generate(services, decision.ids[0 if n == 1 else 1], request)


def _on_compare() -> None:
    ss = st.session_state
    ss[TRIED] = True
    ss.pop(REFUSED, None)
    ss.pop(NOTE, None)
    if _upload_refused():
        return
    request = current_request()
    decision = press.decide(PAIR, request.to_dict(), n_ids=3)
    if decision.kind == presses.TOO_SOON:
        _note(request, presses.TOO_SOON, presses.too_soon(decision))
        return
    std_id, pro_id, group_id = decision.ids
    services = state.services()
    outcomes = playground.submit_pair(services, request, run_ids=(std_id, pro_id), group_id=group_id,
                                      actor=who.current(services))
    refused = next((o.refused for o in outcomes if o.refused), None)
    if refused or not all(o.ok for o in outcomes):
        press.forget(PAIR)
        if refused:
            ss[REFUSED] = refused
        return
    ss[TRIED] = False
    from lib.ui.card import COMPARE_PAGE

    press.clear_note()
    if not any(o.created for o in outcomes):
        press.hand_over(presses.already_sent(decision, "the comparison below is the one it made"),
                        about=group_id)
    elif decision.kind == presses.NEW_TAKE:
        press.hand_over(presses.new_take(decision, "comparison"), about=group_id)
    state.navigate(COMPARE_PAGE, {"group": group_id})


# ------------------------------------------------------------------ drawing
def render(services: Services) -> None:
    """The whole form; call after frame.render() and any restore."""
    init_state()
    ss = st.session_state
    request = current_request()
    problems = _problems(request)
    chain_controls.compose_note(request)  # "Next shot of a chain: …" while the form holds that frame

    with st.container(key="compose_prompt_box"):
        # No max_chars: a widget limit silently drops a long paste; validate() says what to cut instead.
        st.text_area("Prompt", key=PROMPT, height=130, persist_state="session",
                     placeholder="Describe the scene, the action, the camera and the style…")
        n = len(ss.get(PROMPT) or "")
        with st.container(key=f"{K}prompt_count"):
            st.caption(f"{n} / {MAX_PROMPT} · Ctrl+Enter generates", text_alignment="right")
        # counts while typing (Streamlit sends the text only on blur); hides Streamlit's second hint
        page_script.live_counter(f"{K}prompt_box", f"{K}prompt_count", MAX_PROMPT, " · Ctrl+Enter generates")
        _show(problems, "prompt")
        st.pills("Start from an example", list(EXAMPLES), key=EXAMPLE, on_change=_on_example)
        st.text_area("Negative prompt", key=NEGATIVE, height=68,
                     persist_state="session", placeholder="What to avoid, e.g. blur, text, watermark")
        _show(problems, "negative_prompt")

    n_images = len(request.image_urls)
    latest = request.contract == contract.LATEST
    with st.container(key="compose_settings", horizontal=True, gap="medium"):
        st.radio("Mode", MODES, key=MODE, format_func=lambda m: MODE_LABELS[m], horizontal=True,
                 persist_state="session")
        if latest:  # every second from 3 to 15: a slider, not thirteen radio buttons
            latest_fields.duration(DURATION)
        else:
            # one label width always (a longer "15 s (text only)" wrapped the row and moved the form down)
            st.radio("Duration", DURATIONS, key=DURATION, horizontal=True, persist_state="session",
                     format_func=lambda d: f"{d} s", help=FIFTEEN_WITH_IMAGES + ".")
        st.radio("Aspect ratio", ASPECTS, key=ASPECT, horizontal=True, persist_state="session")
        st.segmented_control("Takes", takes.CHOICES, key=TAKES, required=True, persist_state="session",
                             help=takes.HELP)
    _show(problems, "mode")
    _show(problems, "duration")
    _show(problems, "aspect_ratio")
    with st.container(horizontal=True, gap="large", key="compose_switches"):
        st.checkbox("Watermark", key=WATERMARK, persist_state="session",
                    help="Ask the gateway to add its watermark to the video.")
        if latest:
            latest_fields.sound(SOUND, services.settings.prices)
    _show(problems, "audio")

    frames_disabled = (not latest and int(ss.get(DURATION, 5)) > MAX_I2V_DURATION and not n_images)
    if frames_disabled:
        st.caption(":material/block: First and last frame are off at 15 s: "
                   f"{escape_md(FIFTEEN_WITH_IMAGES)}.")
    cols = st.columns(2, gap="medium")
    for col, frame in zip(cols, FRAMES, strict=True):
        with col, st.container(key=f"compose_{frame}_box"):
            _frame_input(frame, frames_disabled, problems)
    if latest:
        reference_images.draw(K)
        _show(problems, "references")

    _estimate_and_buttons(services, request, problems)
    new_run = ss.pop(REVEAL, None)
    if new_run:
        page_script.reveal(new_run, nonce=new_run, mark=True)
        if (last := press.last(GENERATE)) is not None:
            press.touch(GENERATE, last.ids)  # the form is drawn with it: the window starts again
    page_script.hold_playing_video()
    # a preview never widens its column and fits its fixed slot; a chosen file's chip is no shorter than
    # the empty drop zone, so the uploader does not shrink either
    page_script.style(" ".join(
        f".st-key-compose_{f}_box [data-testid='stImage'] img {{max-width: 100%; max-height: "
        f"{PREVIEW_MAX_H}px; width: auto; object-fit: contain;}} "
        f".st-key-compose_{f}_box [data-testid='stFileUploader'] section {{min-height: {UPLOADER_MIN_H}px;}}"
        for f in FRAMES))


def _frame_input(frame: str, disabled: bool, problems: dict[str, list[Problem]]) -> None:
    label = FRAME_LABELS[frame]
    # The same limit as server.maxUploadSize: a bigger file is refused by the browser ("File must be
    # 10.0MB or smaller.") and never reaches the server.
    st.file_uploader(label, type=IMAGE_TYPES, key=file_key(frame), disabled=disabled,
                     on_change=_on_file, args=(frame,), max_upload_size=MAX_IMAGE_MB, help=IMAGE_RULES_TEXT)
    st.text_input(f"{label} URL", key=url_key(frame), disabled=disabled, persist_state="session",
                  placeholder="or paste an https:// image URL", label_visibility="collapsed",
                  on_change=_on_url, args=(frame,))
    with st.container(key=f"{K}{frame}_preview", height=PREVIEW_SLOT_H, border=True,
                      horizontal_alignment="center", vertical_alignment="center", gap="xsmall"):
        _preview(frame, label, disabled, problems.get(frame, []))
    _show(problems, frame)


def _preview(frame: str, label: str, disabled: bool, field_problems: list[Problem]) -> None:
    """The frame's image in its fixed slot, or words saying what the run does without one."""
    ss = st.session_state
    url = frame_url(frame)
    upload = ss.get(upload_key(frame))
    if not url or any(p.level == "error" for p in field_problems):
        if upload and upload.get("fixable") and ss.get(file_key(frame)) is not None:
            name = escape_md(shorten(upload["name"], 40))
            st.caption(f":material/image: {name} breaks the image rules (below).", text_alignment="center")
            aspect = ss.get(ASPECT) or "16:9"
            if st.button("Crop or pad", key=f"{K}{frame}_fix", icon=":material/crop:",
                         help=f"Make it fit the video's {aspect}: choose the part to keep, or keep it all "
                              "with bars."):
                _fix_dialog(frame, aspect)
            return
        if url or upload:
            words = f"This {label.lower()} cannot be used: see the words below."
        elif disabled:
            words = f"{label} is off at 15 s."
        else:
            words = EMPTY_SLOT[frame]
        st.caption(f":material/image: {escape_md(words)}", text_alignment="center")
        return
    chosen = ss.get(file_key(frame))
    restored = bool(upload and upload.get("url") == url and chosen is None)
    if upload and upload.get("url") == url and chosen is not None:
        # Made once per file (by content hash), not decoded again on every rerun.
        source = upload.get("fixed") or chosen.getvalue()  # a cropped or padded frame shows as sent
        sha = upload.get("sha") or images.content_hash(source)
        thumb = images.preview(sha, lambda: source)
        if thumb is not None:
            st.image(thumb, width="content")
    else:
        st.image(url, width="content")
    # one short line under the image (the slot's height allows no more; the frame's label is above it)
    if restored:  # the earlier run's image: its name means nothing here, Remove is what the user needs
        st.button("Remove", key=f"{K}{frame}_remove", icon=":material/close:", type="tertiary",
                  on_click=_drop_upload, args=(frame,),
                  help=f"This is {RESTORED_NAME}. Remove it to send this run without this frame.")
    else:
        name = upload["name"] if upload and upload.get("url") == url else "pasted URL"
        st.caption(escape_md(shorten(name, 24)), width="content", wrap=False)


@st.dialog("Make the frame fit", width="medium")
def _fix_dialog(frame: str, aspect: str) -> None:
    """Crop (streamlit-extras' image_crop, at the video's aspect) or pad a refused picture; the result is
    checked and uploaded like any chosen file, and previewed in the form as it will be sent."""
    ss = st.session_state
    chosen, upload = ss.get(file_key(frame)), ss.get(upload_key(frame)) or {}
    if chosen is None:
        st.caption("The file is no longer chosen: choose it again.")
        return
    data, ratio = chosen.getvalue(), frame_fix.ratio_of(aspect)
    for p in upload.get("problems", []):
        st.caption(f":material/error: {escape_md(p['message'])}")
    try:
        width, height = frame_fix.size_of(data)
    except (OSError, ValueError):  # a header that reads but pixels that do not (a truncated file)
        st.error("This picture cannot be read in full, so it cannot be fixed here — choose another file.",
                 icon=":material/error:")
        return
    shown = images.make_preview(data, side=CROP_VIEW_SIDE)  # sharp enough to choose by, light to send
    st.caption(f"Drag the {aspect} frame over the part to keep, or keep the whole picture with bars.")
    bounds = image_crop(shown or data, aspect=ratio, initial_crop=frame_fix.centered(width, height, ratio),
                        key=f"{K}{frame}_crop_{aspect}")
    with st.container(horizontal=True):
        use_crop = st.button("Use this crop", type="primary", icon=":material/crop:",
                             key=f"{K}{frame}_crop_use")
        use_pad = st.button(f"Pad to {aspect}", icon=":material/fit_screen:", key=f"{K}{frame}_pad_use")
    if not (use_crop or use_pad):
        return
    try:
        fixed = frame_fix.crop(data, bounds, ratio) if use_crop else frame_fix.pad(data, ratio)
    except (OSError, ValueError):
        st.error("This picture cannot be read in full, so it cannot be fixed here — choose another file.",
                 icon=":material/error:")
        return
    url, problems = playground.upload_frame(state.services(), fixed, chosen.name, frame)
    how = "cropped" if use_crop else "padded"
    _keep_upload(frame, f"{chosen.name} ({how})", fixed, url, problems, fixed=True)
    st.rerun()


def _estimate_and_buttons(services: Services, request: VideoRequest,
                          problems: dict[str, list[Problem]]) -> None:
    ss = st.session_state
    cost: float | None
    pair_cost: float | None
    try:
        cost = playground.estimate(services, request)
        pair_cost = sum(playground.estimate(services, r) for r in playground.pair_requests(request))
    except ValueError:
        cost = pair_cost = None
    n = current_takes()
    with st.container(key="compose_estimate"):
        if cost is not None and pair_cost is not None:
            prices = services.settings.prices
            sound = spend_labels.sound_part([request] * n, prices)
            price = escape_md(takes.price_words(cost, n))
            st.markdown(f"**Cost {price}**{escape_md(sound)} · std vs pro pair "
                        f"{contract.format_estimate(pair_cost)}"
                        f"{escape_md(spend_labels.sound_part(playground.pair_requests(request), prices))}")
        left = playground.budget_left(services)
        if left is not None and cost is not None:
            budget = services.settings.budget_usd
            if takes.total(cost, n) > left + 1e-9:
                what = "this run is" if n == 1 else f"these {takes.plural(n)} are"
                fits = "" if n == 1 else " " + takes.fit_words(n, takes.fitting(cost, left))
                st.error(escape_md(f"Over budget: {what} estimated at {money.usd(takes.total(cost, n))}, "
                                   f"but only {money.usd(max(left, 0))} of the {money.usd(budget)} budget is "
                                   f"left; Generate is refused.{fits}"), icon=":material/block:")
            else:
                st.caption(escape_md(f"Budget: {money.usd(left)} of {money.usd(budget)} left (estimates)."))
    if ss.get(REFUSED):
        st.error(escape_md(ss[REFUSED]), icon=":material/block:")
    with st.container(horizontal=True, key="compose_buttons"):
        with st.container(key="compose_generate", width="content"):
            prices = services.settings.prices
            st.button(takes.generate_label(request, prices, n), type="primary",
                      key=f"{K}generate_button", icon=":material/movie:",
                      shortcut="Ctrl+Enter", on_click=_on_generate)
        with st.container(key="compose_compare", width="content"):
            st.button(spend_labels.pair(playground.pair_requests(request), prices),
                      key=f"{K}pair_button", icon=":material/compare:",
                      on_click=_on_compare,
                      help="Submit this request twice, as std 720p and pro 1080p, and open them side by "
                           "side.")
    note = ss.get(NOTE)
    if note and note["fp"] == presses.fingerprint("form", request.to_dict()):
        icon = {presses.NEW_TAKE: ":material/add_circle:", presses.TOO_SOON: ":material/pan_tool:"}
        with st.container(key="compose_press_note"):
            st.info(escape_md(note["text"]), icon=icon.get(note["kind"], ":material/info:"))
    if any(p.level == "error" for ps in problems.values() for p in ps):
        st.caption("Fix the problems above first: nothing is sent while any remains.")
