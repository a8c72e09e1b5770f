"""Compare's form: its session keys, seeding (group, shared query, `?run=`), the preview and Submit grid.

Why here and not in the page: the page only lays out; the form's state and callbacks are one concept
(what grid the user is about to send), and the decisions behind it (cells, costs, budget) live in
lib/compare.py.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import streamlit as st

from lib import compare, contract, money, pasted_image, playground, query, spend_labels, takes
from lib.contract import (
    ASPECTS,
    DURATIONS,
    FIFTEEN_WITH_IMAGES,
    IMAGE_RULES_TEXT,
    MAX_I2V_DURATION,
    MAX_IMAGE_MB,
    MAX_PROMPT,
    MODE_LABELS,
    MODES,
    format_estimate,
)
from lib.safe_fetch import url_problem
from lib.ui import latest_fields, press, reference_images, state
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.ledger import Run
    from lib.services import Services

K = "cmp_"
N_VARIANTS, MODES_KEY, DURATIONS_KEY, ASPECTS_KEY = f"{K}n", f"{K}modes", f"{K}durations", f"{K}aspects"
NEGATIVE, WATERMARK, SOUND = f"{K}negative", f"{K}watermark", f"{K}sound"
REFUSED, SEEDED, DRAWN = f"{K}refused", f"{K}seeded", f"{K}drawn"
GRID = "grid"  # press-memory action of "Submit grid"
GRID_REFUSED = f"{K}grid_refused"
TAKES = f"{K}takes"  # takes per cell (lib/takes.py)
FRAMES = ("first_frame", "last_frame")
FRAME_LABELS = {"first_frame": "First frame", "last_frame": "Last frame"}
QUERY_SEED_KEYS = compare.QUERY_KEYS
IMAGE_TYPES = list(contract.IMAGE_EXTENSIONS)  # one list of formats everywhere
PERSIST: Final = "session"  # the form survives a visit to another page


def prompt_key(i: int) -> str:
    return f"{K}prompt_{i}"


def url_key(frame_name: str) -> str:
    return f"{K}{frame_name}_url"


def file_key(frame_name: str) -> str:
    return f"{K}{frame_name}_file"



# ------------------------------------------------------------------ seeding the form
def seed_form(spec: compare.GridSpec) -> None:
    """Write a grid's settings into the form keys (before the widgets draw)."""
    ss = st.session_state
    prompts = list(spec.prompts[: compare.MAX_VARIANTS]) or [""]
    ss[N_VARIANTS] = len(prompts)
    for i in range(compare.MAX_VARIANTS):
        ss[prompt_key(i)] = (prompts[i] if i < len(prompts) else "")[:MAX_PROMPT]
    latest = _latest()
    ss[MODES_KEY] = [m for m in spec.modes if m in MODES] or list(compare.DEFAULT_MODES)
    offered = contract.durations_for(contract.LATEST if latest else contract.V1)
    ss[DURATIONS_KEY] = [d for d in spec.durations if d in offered] or list(compare.DEFAULT_DURATIONS)
    ss[SOUND] = bool(latest and spec.audio is True)
    reference_images.restore(K, spec.references if latest else ())
    ss[ASPECTS_KEY] = [a for a in spec.aspects if a in ASPECTS] or list(compare.DEFAULT_ASPECTS)
    ss[NEGATIVE] = (spec.negative_prompt or "")[:MAX_PROMPT]
    ss[WATERMARK] = bool(spec.watermark)
    for i, name in enumerate(FRAMES):
        ss[url_key(name)] = spec.image_urls[i] if i < len(spec.image_urls) else ""
    ss.pop(REFUSED, None)


def _latest() -> bool:
    """TOAPIS_CONTRACT=latest: the grid offers Sound, 3–15 s and reference images."""
    return state.services().settings.contract == contract.LATEST


def init_form() -> None:
    """Defaults once per session: one prompt (Compose's, when it has one) × std and pro × 5 s."""
    ss = st.session_state
    ss.setdefault(TAKES, 1)
    if N_VARIANTS in ss:
        return
    start = str(ss.get("compose_prompt") or "")
    seed_form(compare.GridSpec(prompts=(start,)))


def seed_from_sources(services: Services, group_runs: Sequence[Run], qp: query.QueryReader) -> str | None:
    """Fill the form from the open group, share-view query params, or `?run=<id>`; a note for the user."""
    ss = st.session_state
    group_id = qp.ident("group", quiet=True)
    if group_id and group_runs and ss.get(SEEDED) != f"group:{group_id}":
        spec = compare.spec_from_runs(group_runs)
        if spec is not None:
            seed_form(spec)
            ss[TAKES] = takes.pressed(group_runs)  # the takes per cell its press made
        ss[SEEDED] = f"group:{group_id}"
        return None
    if any(qp.has(k) for k in ("prompt", "prompt2", "prompt3", "prompt4")):
        spec = compare.spec_from_query(qp, services.settings.contract)
        for key in QUERY_SEED_KEYS:
            with contextlib.suppress(KeyError):
                del st.query_params[key]
        if spec is not None:
            seed_form(spec)
            ss[SEEDED] = "query"
            filled = "Settings filled in from the shared grid: check the cost, then press Submit grid."
            return " ".join([filled, *qp.notes])
    if qp.has("run"):
        run_id = qp.ident("run", quiet=True)
        if ss.get(SEEDED) == f"run:{run_id}":
            return None
        ss[SEEDED] = f"run:{run_id}"
        run = services.ledger.get(run_id) if run_id else None
        if run is None or run.unreadable:
            return "That run was not found, so nothing was filled in."
        req = run.request
        seed_form(compare.GridSpec(prompts=(req.prompt,), durations=(req.effective_duration,),
                                   aspects=(req.effective_aspect,), image_urls=req.image_urls,
                                   negative_prompt=req.negative_prompt, watermark=req.watermark))
        return ("The run is shown beside its pair. \"New grid from these settings\" below holds its "
                "settings for a bigger grid.")
    return None


def current_takes() -> int:
    """Takes per cell the form asks for; a value outside 1–4 is kept so the plan names it in words."""
    value = st.session_state.get(TAKES)
    return 1 if value is None else value


def current_plan(services: Services) -> compare.GridPlan:
    """The grid the form describes, every cell × its takes, priced."""
    return compare.expand(current_spec(), services.settings.prices, takes=current_takes())


def current_spec() -> compare.GridSpec:
    """The grid the form describes right now."""
    ss = st.session_state
    n = int(ss.get(N_VARIANTS) or 1)
    images = [(ss.get(url_key(f)) or "").strip() for f in FRAMES]
    if images[1] and not images[0]:
        urls: tuple[str, ...] = ("", images[1])  # validate() then names the missing first frame
    else:
        urls = tuple(u for u in images if u)
    negative = ss.get(NEGATIVE) or ""
    latest = _latest()
    return compare.GridSpec(
        contract=contract.LATEST if latest else contract.V1,
        audio=True if latest and ss.get(SOUND) else None,
        references=reference_images.urls(K) if latest else (),
        prompts=tuple(ss.get(prompt_key(i)) or "" for i in range(n)),
        modes=tuple(ss.get(MODES_KEY) or ()),
        durations=tuple(ss.get(DURATIONS_KEY) or ()),
        aspects=tuple(ss.get(ASPECTS_KEY) or ()),
        image_urls=urls,
        negative_prompt=negative if negative.strip() else None,
        watermark=True if ss.get(WATERMARK) else None,
    )


# ------------------------------------------------------------------ callbacks (run before the script)
def _on_submit() -> None:
    ss = st.session_state
    ss.pop(REFUSED, None)
    for name in FRAMES:  # a URL that came with a link or a seed, not pasted here: judged now, before spending
        _check_pasted(name)
    if any(ss.get(f"{K}{name}_problems") for name in FRAMES) or (_latest() and reference_images.refused(K)):
        ss[REFUSED] = "Fix or remove the image above first: the grid is not sent without it."
        return
    result = press.submit_grid(GRID, current_plan(state.services()))
    if not result.ok:
        ss[REFUSED] = result.refused or "; ".join(p.message for p in result.problems)
        if not result.runs:
            return
    ss[SEEDED] = f"group:{result.group_id}"
    if result.created:
        st.toast(f"Grid submitted: {len(result.runs)} runs on their way.", icon=":material/send:")
    state.navigate("pages/compare.py", {"group": result.group_id})


def _on_file(frame_name: str) -> None:
    """Check and upload a chosen image at once, so its URL and problems show before the grid is sent."""
    ss = st.session_state
    uploaded = ss.get(file_key(frame_name))
    previous = ss.pop(f"{K}{frame_name}_uploaded", None)
    ss.pop(f"{K}{frame_name}_problems", None)
    if uploaded is None:  # the file was removed: so is the URL it gave, unless the user typed another
        if previous and ss.get(url_key(frame_name)) == previous:
            ss[url_key(frame_name)] = ""
        return
    url, problems = playground.upload_frame(state.services(), uploaded.getvalue(), uploaded.name, frame_name)
    ss[f"{K}{frame_name}_problems"] = [p.message for p in problems if p.level == "error"]
    if url:
        ss[url_key(frame_name)] = url
        ss[f"{K}{frame_name}_uploaded"] = url
        ss[f"{K}{frame_name}_checked"] = url


def _check_pasted(frame_name: str) -> None:
    """Judge a pasted frame URL once (lib.pasted_image: shape, the guarded fetch, the image rules), so its
    words show under the field before anything is sent. An upload's own URL was judged as a file."""
    ss = st.session_state
    url = (ss.get(url_key(frame_name)) or "").strip()
    if url == ss.get(f"{K}{frame_name}_checked"):
        return
    ss[f"{K}{frame_name}_checked"] = url
    ss.pop(f"{K}{frame_name}_problems", None)
    if not url or url == ss.get(f"{K}{frame_name}_uploaded") or url_problem(url) is not None:
        return  # nothing pasted, our own upload, or a non-web address the grid's validation words name
    fetcher = pasted_image.quick_fetcher(state.services().archive.fetcher)
    problems = pasted_image.check_url(fetcher, url, frame_name)
    ss[f"{K}{frame_name}_problems"] = [p.message for p in problems if p.level == "error"]


# ------------------------------------------------------------------ drawing
def draw_form() -> None:
    ss = st.session_state
    st.segmented_control("Prompt variants", [1, 2, 3, 4], key=N_VARIANTS, persist_state=PERSIST,
                         required=True, help="Run up to four versions of the prompt side by side.")
    n = int(ss.get(N_VARIANTS) or 1)
    for i in range(n):
        st.text_area(f"Prompt {i + 1}" if n > 1 else "Prompt", key=prompt_key(i), height=90,
                     persist_state=PERSIST,
                     placeholder="Describe the scene, the action, the camera and the style…")
    n_images = len([u for u in (ss.get(url_key(f)) for f in FRAMES) if u])
    latest = _latest()
    with st.container(horizontal=True, gap="medium", key=f"{K}dims"):
        st.pills("Mode", MODES, selection_mode="multi", key=MODES_KEY, persist_state=PERSIST,
                 format_func=lambda m: MODE_LABELS[m])
        if latest:  # every second from 3 to 15, with or without images
            st.pills("Duration", contract.LATEST_DURATIONS, selection_mode="multi", key=DURATIONS_KEY,
                     persist_state=PERSIST, format_func=lambda d: f"{d} s")
        else:
            st.pills("Duration", DURATIONS, selection_mode="multi", key=DURATIONS_KEY, persist_state=PERSIST,
                     format_func=lambda d: f"{d} s" + (" (text only)" if d > MAX_I2V_DURATION and n_images
                                                       else ""))
        st.pills("Aspect ratio", ASPECTS, selection_mode="multi", key=ASPECTS_KEY, persist_state=PERSIST)
        st.segmented_control("Takes per cell", takes.CHOICES, key=TAKES, required=True, persist_state=PERSIST,
                             help=takes.HELP)
    if latest:
        latest_fields.sound(SOUND, state.services().settings.prices)
    more = "First / last frame, reference images, negative prompt, watermark" if latest else \
        "First / last frame, negative prompt, watermark"
    with st.expander(more, expanded=bool(n_images) or bool(latest and reference_images.entries(K))):
        cols = st.columns(2, gap="medium")
        for col, name in zip(cols, FRAMES, strict=True):
            with col, st.container(key=f"{K}{name}_box"):
                st.file_uploader(FRAME_LABELS[name], type=IMAGE_TYPES, key=file_key(name),
                                 on_change=_on_file, args=(name,), max_upload_size=MAX_IMAGE_MB,
                                 help=IMAGE_RULES_TEXT)
                st.text_input(f"{FRAME_LABELS[name]} URL", key=url_key(name), persist_state=PERSIST,
                              placeholder="or paste an https:// image URL", label_visibility="collapsed",
                              on_change=_check_pasted, args=(name,))
                for message in ss.get(f"{K}{name}_problems", []):
                    st.error(escape_md(message), icon=":material/error:")
                url = (ss.get(url_key(name)) or "").strip()
                if url and url_problem(url) is None and not ss.get(f"{K}{name}_problems"):
                    st.image(url, caption=FRAME_LABELS[name], width=200)
        if n_images and not latest:
            st.caption(f"With images, 15 s cells are crossed out: {escape_md(FIFTEEN_WITH_IMAGES)}.")
        if latest:
            reference_images.draw(K)
        st.text_area("Negative prompt", key=NEGATIVE, height=68, persist_state=PERSIST,
                     placeholder="What to avoid, e.g. blur, text, watermark")
        st.checkbox("Watermark", key=WATERMARK, persist_state=PERSIST)


def rows(cells: Sequence[Any], n_cols: int) -> list[list[Any]]:
    return [list(cells[i:i + n_cols]) for i in range(0, len(cells), max(1, n_cols))]


def draw_preview(plan: compare.GridPlan) -> None:
    """Every cell with its estimated cost before anything is sent; forbidden cells crossed out."""
    st.markdown(f"**Grid preview** · {len(plan.cells)} cells")
    n_cols = max(1, len(plan.spec.modes))
    for row in rows(plan.cells, n_cols):
        cols = st.columns(n_cols, gap="small")
        for col, cell in zip(cols, row, strict=False):
            with col, st.container(border=True, key=f"{K}preview_{cell.index}"):
                if cell.forbidden:
                    st.markdown(f"~~{escape_md(cell.label)}~~ · not sent")
                    st.caption(escape_md(cell.forbidden))
                else:
                    size = cell.request.resolution
                    res = f" · {size[0]}×{size[1]}" if size else ""
                    st.markdown(f"**{escape_md(cell.label)}**{escape_md(res)}")
                    sound = spend_labels.sound_part([cell.request], state.services().settings.prices)
                    price = takes.price_words(cell.est_cost, plan.takes)
                    st.caption(escape_md(price) + escape_md(sound))
                if plan.spec.prompts and len(plan.spec.prompts) > 1:
                    st.caption(escape_md(shorten(cell.request.prompt, 70)) or "(empty prompt)")


def draw_total_and_submit(services: Services, plan: compare.GridPlan) -> None:
    ss = st.session_state
    sent = plan.runs
    verdict = compare.check_budget(plan.total, services.ledger.spend(include_drafts=True),
                                   services.settings.budget_usd, takes=plan.takes)
    with st.container(key=f"{K}total"):
        skipped = len(plan.forbidden)
        extra = f" · {skipped} crossed out (not sent, not billed)" if skipped else ""
        sound = spend_labels.sound_part([c.request for c in plan.sendable] * plan.takes,
                                        services.settings.prices)
        per = (f" ({takes.plural(len(plan.sendable), 'cell')} × {takes.plural(plan.takes)}, each take its "
               "own run and charge)") if plan.takes > 1 else ""
        st.markdown(f"**Total {format_estimate(plan.total)}**{escape_md(sound)} for {sent} "
                    f"run{'s' if sent != 1 else ''}{escape_md(per)}{extra}")
        if not verdict.ok:
            st.error(escape_md(verdict.message), icon=":material/block:")
        elif verdict.budget is not None and verdict.remaining is not None:
            after = money.usd(verdict.remaining - plan.total)
            st.caption(escape_md(f"Budget: {money.usd(verdict.remaining)} of {money.usd(verdict.budget)} "
                                 f"left (estimates); after this grid {after}."))
    for p in plan.errors:
        if p.field.startswith("prompt") and "is empty" in p.message:
            # not a mistake yet, just the next step
            st.caption(":material/edit: " + escape_md(p.message))
        else:
            st.error(escape_md(p.message), icon=":material/error:")
    if ss.get(REFUSED):
        st.error(escape_md(ss[REFUSED]), icon=":material/block:")
    blocked = not plan.ok or not verdict.ok
    st.button(spend_labels.grid("Submit grid", sent, plan.total) + sound, type="primary",
              key=f"{K}submit_grid", icon=":material/grid_view:", disabled=blocked,
              on_click=_on_submit,
              help="Sends every cell that is not crossed out, as one comparison group.")
    if not plan.sendable and plan.cells:
        st.caption("Nothing to send: every cell is crossed out.")


