"""Compare: one prompt (or up to four variants) across modes, durations and aspects, priced before sending.

Why this page is mostly drawing: every decision (cells, forbidden cells and why, costs, budget, restoring a
saved grid) is made in lib/compare.py and tested there. The ledger is the truth: `?group=<id>` redraws a
grid from its runs after a reload or on a later visit, and unfinished cells keep filling in.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import streamlit as st

from lib import compare, contract, links, playground, query
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
from lib.ledger import ACTIVE, COMPLETED, FAILED
from lib.ui import card, frame, player, press, state, sync_player
from lib.ui.text import escape_md, shorten

services = frame.render("Compare", icon=":material/compare:")

K = "cmp_"
N_VARIANTS, MODES_KEY, DURATIONS_KEY, ASPECTS_KEY = f"{K}n", f"{K}modes", f"{K}durations", f"{K}aspects"
NEGATIVE, WATERMARK = f"{K}negative", f"{K}watermark"
REFUSED, SEEDED, DRAWN = f"{K}refused", f"{K}seeded", f"{K}drawn"
GRID = "grid"  # press-memory action of "Submit grid"
GRID_REFUSED = f"{K}grid_refused"
FRAMES = ("first_frame", "last_frame")
FRAME_LABELS = {"first_frame": "First frame", "last_frame": "Last frame"}
QUERY_SEED_KEYS = ("prompt", "prompt2", "prompt3", "prompt4", "modes", "durations", "aspect_ratio", "aspects",
                   "negative_prompt", "first_frame", "last_frame", "watermark")
IMAGE_TYPES = list(contract.IMAGE_EXTENSIONS)  # one list of formats everywhere
PERSIST = "session"  # the form survives a visit to another page


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
    ss[MODES_KEY] = [m for m in spec.modes if m in MODES] or list(compare.DEFAULT_MODES)
    ss[DURATIONS_KEY] = [d for d in spec.durations if d in DURATIONS] or list(compare.DEFAULT_DURATIONS)
    ss[ASPECTS_KEY] = [a for a in spec.aspects if a in ASPECTS] or list(compare.DEFAULT_ASPECTS)
    ss[NEGATIVE] = (spec.negative_prompt or "")[:MAX_PROMPT]
    ss[WATERMARK] = bool(spec.watermark)
    for i, name in enumerate(FRAMES):
        ss[url_key(name)] = spec.image_urls[i] if i < len(spec.image_urls) else ""
    ss.pop(REFUSED, None)


def init_form() -> None:
    """Defaults once per session: one prompt (Compose's, when it has one) × std and pro × 5 s."""
    ss = st.session_state
    if N_VARIANTS in ss:
        return
    start = str(ss.get("compose_prompt") or "")
    seed_form(compare.GridSpec(prompts=(start,)))


def seed_from_sources(group_runs: Sequence[Any], qp: query.QueryReader) -> str | None:
    """Fill the form from the open group, share-view query params, or `?run=<id>`; a note for the user."""
    ss = st.session_state
    group_id = qp.ident("group", quiet=True)
    if group_id and group_runs and ss.get(SEEDED) != f"group:{group_id}":
        spec = compare.spec_from_runs(group_runs)
        if spec is not None:
            seed_form(spec)
        ss[SEEDED] = f"group:{group_id}"
        return None
    if any(qp.has(k) for k in ("prompt", "prompt2", "prompt3", "prompt4")):
        spec = compare.spec_from_query(qp)
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
        return "Settings filled in from the run: std and pro are picked; press Submit grid to compare."
    return None


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
    return compare.GridSpec(
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
    if any(ss.get(f"{K}{name}_problems") for name in FRAMES):
        ss[REFUSED] = "Fix or remove the image above first: the grid is not sent without it."
        return
    spec = current_spec()
    result = press.submit_grid(GRID, compare.expand(spec, state.services().settings.prices))
    if not result.ok:
        ss[REFUSED] = result.refused or "; ".join(p.message for p in result.problems)
        if not result.runs:
            return
    ss[SEEDED] = f"group:{result.group_id}"
    if result.created:
        st.toast(f"Grid submitted: {len(result.runs)} runs on their way.", icon=":material/send:")
    state.navigate("pages/compare.py", {"group": result.group_id})


def _on_rerun_grid(group_id: str) -> None:
    """The same grid again, as a new group (a new take of every cell)."""
    ss = st.session_state
    svc = state.services()
    spec = compare.spec_from_runs(svc.ledger.group(group_id))
    if spec is None:
        return
    result = press.submit_grid(f"rerun_grid:{group_id}", compare.expand(spec, svc.settings.prices))
    if not result.ok:
        ss[GRID_REFUSED] = result.refused or "; ".join(p.message for p in result.problems)
        if not result.runs:
            return
    seed_form(spec)
    ss[SEEDED] = f"group:{result.group_id}"
    state.navigate("pages/compare.py", {"group": result.group_id})


def _on_cell_rerun(run_id: str) -> None:
    """A new take of one cell, in the same group with the same label (the grid shows the newest)."""
    card.press_take(run_id, "New take: this cell is being made again; the grid shows the newest take.")


def _on_promote(run_id: str) -> None:
    """std → pro with the same prompt and frames, as a child run (one promotion per cell)."""
    card.press_promote(run_id, "Promoted: a pro run is on its way, linked to this cell.")


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


# ------------------------------------------------------------------ drawing: the form and the preview
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
    with st.container(horizontal=True, gap="medium", key=f"{K}dims"):
        st.pills("Mode", MODES, selection_mode="multi", key=MODES_KEY, persist_state=PERSIST,
                 format_func=lambda m: MODE_LABELS[m])
        st.pills("Duration", DURATIONS, selection_mode="multi", key=DURATIONS_KEY, persist_state=PERSIST,
                 format_func=lambda d: f"{d} s" + (" (text only)" if d > MAX_I2V_DURATION and n_images
                                                   else ""))
        st.pills("Aspect ratio", ASPECTS, selection_mode="multi", key=ASPECTS_KEY, persist_state=PERSIST)
    with st.expander("First / last frame, negative prompt, watermark", expanded=bool(n_images)):
        cols = st.columns(2, gap="medium")
        for col, name in zip(cols, FRAMES, strict=True):
            with col, st.container(key=f"{K}{name}_box"):
                st.file_uploader(FRAME_LABELS[name], type=IMAGE_TYPES, key=file_key(name),
                                 on_change=_on_file, args=(name,), max_upload_size=MAX_IMAGE_MB,
                                 help=IMAGE_RULES_TEXT)
                st.text_input(f"{FRAME_LABELS[name]} URL", key=url_key(name), persist_state=PERSIST,
                              placeholder="or paste an https:// image URL", label_visibility="collapsed")
                for message in ss.get(f"{K}{name}_problems", []):
                    st.error(escape_md(message), icon=":material/error:")
                url = (ss.get(url_key(name)) or "").strip()
                if url.startswith(("http://", "https://")):
                    st.image(url, caption=FRAME_LABELS[name], width=200)
        if n_images:
            st.caption(f"With images, 15 s cells are crossed out: {escape_md(FIFTEEN_WITH_IMAGES)}.")
        st.text_area("Negative prompt", key=NEGATIVE, height=68, persist_state=PERSIST,
                     placeholder="What to avoid, e.g. blur, text, watermark")
        st.checkbox("Watermark", key=WATERMARK, persist_state=PERSIST)


def _rows(cells: Sequence[Any], n_cols: int) -> list[list[Any]]:
    return [list(cells[i:i + n_cols]) for i in range(0, len(cells), max(1, n_cols))]


def draw_preview(plan: compare.GridPlan) -> None:
    """Every cell with its estimated cost before anything is sent; forbidden cells crossed out."""
    st.markdown(f"**Grid preview** · {len(plan.cells)} cells")
    n_cols = max(1, len(plan.spec.modes))
    for row in _rows(plan.cells, n_cols):
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
                    st.caption(format_estimate(cell.est_cost))
                if plan.spec.prompts and len(plan.spec.prompts) > 1:
                    st.caption(escape_md(shorten(cell.request.prompt, 70)) or "(empty prompt)")


def draw_total_and_submit(plan: compare.GridPlan) -> None:
    ss = st.session_state
    sent = len(plan.sendable)
    verdict = compare.check_budget(plan.total, services.ledger.spend(include_drafts=True),
                                   services.settings.budget_usd)
    with st.container(key=f"{K}total"):
        skipped = len(plan.forbidden)
        extra = f" · {skipped} crossed out (not sent, not billed)" if skipped else ""
        st.markdown(f"**Total {format_estimate(plan.total)}** for {sent} run{'s' if sent != 1 else ''}"
                    f"{extra}")
        if not verdict.ok:
            st.error(escape_md(verdict.message), icon=":material/block:")
        elif verdict.budget is not None:
            st.caption(escape_md(f"Budget: ${verdict.remaining:,.2f} of ${verdict.budget:,.2f} left "
                                 f"(estimates); after this grid ${verdict.remaining - plan.total:,.2f}."))
    for p in plan.errors:
        if p.field.startswith("prompt") and "is empty" in p.message:
            # not a mistake yet, just the next step
            st.caption(":material/edit: " + escape_md(p.message))
        else:
            st.error(escape_md(p.message), icon=":material/error:")
    if ss.get(REFUSED):
        st.error(escape_md(ss[REFUSED]), icon=":material/block:")
    blocked = not plan.ok or not verdict.ok
    st.button(f"Submit grid ({sent} run{'s' if sent != 1 else ''})", type="primary",
              key=f"{K}submit_grid", icon=":material/grid_view:", disabled=blocked,
              on_click=_on_submit,
              help="Sends every cell that is not crossed out, as one comparison group.")
    if not plan.sendable and plan.cells:
        st.caption("Nothing to send: every cell is crossed out.")


# ------------------------------------------------------------------ drawing: a saved grid
def _finished_text(run: Any) -> str:
    took = run.seconds_to_finish
    if took is None:
        took = playground.elapsed_seconds(run, time.time())
    return f"Finished in {playground.format_seconds(took)}"


def draw_cell(view: compare.CellView, *, show_prompt: bool = False) -> None:
    cell, run = view.cell, view.run
    with st.container(border=True, key=f"{K}cell_{cell.index}"):
        if cell.forbidden:
            st.markdown(f"~~{escape_md(cell.label)}~~")
            st.caption(escape_md(cell.forbidden) + " · not sent, not billed")
            return
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.markdown(f"**{escape_md(cell.label)}**")
            if run is not None:
                card.state_badge(run)
            if view.takes > 1:
                st.caption(f"take {view.takes}")
        if show_prompt:
            st.caption(escape_md(shorten(cell.request.prompt, 90)))
        if run is None:
            st.caption("Not sent.")
            return
        cost = format_estimate(run.est_cost)
        if run.state in ACTIVE:
            progress = max(0, min(100, int(run.progress or 0)))
            st.progress(progress / 100, text=f"{progress}% · {card.timing(run)}")
            st.caption(cost)
        elif run.state == COMPLETED:
            note = "" if run.video_path else " · archiving…"
            st.caption(f"{_finished_text(run)} · {cost}{note}")
        elif run.state == FAILED:
            st.error(escape_md(playground.explain(run)), icon=":material/error:")
            st.caption("Not billed.")
        else:
            st.caption(escape_md(playground.explain(run)))
        promoted = [c for c in services.ledger.children(run.run_id) if c.source == "promote"]
        for child in promoted:
            req = child.request
            st.page_link("pages/run.py", query_params={"id": child.run_id}, icon=":material/upgrade:",
                         label=f"Promoted: {req.effective_mode} · {req.effective_duration} s · "
                               f"{child.state.replace('_', ' ')}")
        with st.container(horizontal=True, gap="small", key=f"{K}actions_{cell.index}"):
            if run.state == COMPLETED and run.request.effective_mode == "std":
                st.button("Promote", key=f"{K}promote_{run.run_id}", icon=":material/upgrade:",
                          on_click=_on_promote, args=(run.run_id,), disabled=bool(promoted),
                          help="The same prompt and frames as pro 1080p (longer when allowed), linked "
                               "to this cell.")
            if run.state not in ACTIVE:
                st.button(f"Another take · ≈ ${run.est_cost:.2f}", key=f"{K}rerun_{run.run_id}",
                          icon=":material/add_circle:", on_click=_on_cell_rerun, args=(run.run_id,),
                          help=f"A new take of this cell ({cost}); the grid shows the newest take.")
            with st.popover("Share", icon=":material/link:", key=f"{K}share_{cell.index}"):
                st.caption("Anyone with this link sees this run (read-only):")
                st.code(links.share_url(player.origin(), run_id=run.run_id), language=None)


def draw_cells(plan: compare.GridPlan, runs: Sequence[Any]) -> None:
    views = compare.attach_runs(plan, runs)
    n_cols = max(1, len(plan.spec.modes))
    for row in _rows(views, n_cols):
        cols = st.columns(n_cols, gap="small")
        for col, view in zip(cols, row, strict=False):
            with col:
                draw_cell(view, show_prompt=len(plan.spec.prompts) > 1)


def _archived_ids(runs: Sequence[Any]) -> list[str]:
    return sorted(r.run_id for r in runs if r.video_path)


def draw_group(group_id: str, runs: Sequence[Any]) -> None:
    spec = compare.spec_from_runs(runs)
    if spec is None:
        return
    plan = compare.expand(spec, services.settings.prices)
    views = compare.attach_runs(plan, runs)
    shown = [v.run for v in views if v.run is not None]
    done = sum(1 for r in shown if r.state == COMPLETED)
    failed = sum(1 for r in shown if r.state == FAILED)
    est = sum(float(r.est_cost or 0) for r in shown)
    billed = sum(float(r.est_cost or 0) for r in shown if r.billed)
    with st.container(key=f"{K}group"):
        st.subheader("This grid")
        summary = f"{len(shown)} runs · {done} finished"
        if failed:
            summary += f" · {failed} failed (not billed)"
        summary += f" · {format_estimate(est)} total, ≈ ${billed:,.2f} billable"
        st.caption(summary)
        with st.container(horizontal=True, gap="small", vertical_alignment="center", key=f"{K}group_actions"):
            with st.popover("Share this grid", icon=":material/link:", key=f"{K}share_group"):
                st.caption("Anyone with this link sees the whole grid (read-only) and can re-run it:")
                st.code(links.share_url(player.origin(), group_id=group_id), language=None)
            st.page_link("pages/run.py", query_params={"group": group_id}, label="Open the share view",
                         icon=":material/open_in_new:")
            st.button(f"Re-run this grid · ≈ ${plan.total:,.2f}", key=f"{K}rerun_grid_{group_id}",
                      icon=":material/replay:", on_click=_on_rerun_grid, args=(group_id,),
                      help=f"Every cell again, as a new grid: {format_estimate(plan.total)}.")
        if st.session_state.get(GRID_REFUSED):
            st.error(st.session_state.pop(GRID_REFUSED), icon=":material/block:")

    def live() -> None:
        current = services.ledger.group(group_id)
        draw_cells(plan, current)
        latest = [v.run for v in compare.attach_runs(plan, current) if v.run is not None]
        # a newly archived video belongs in the synced player, which only a full run redraws
        # (converges: the full run records what it drew before this body runs)
        if st.session_state.get(DRAWN) != (group_id, _archived_ids(latest)):
            st.rerun()

    pending = any(r.state in ACTIVE or (r.state == COMPLETED and not r.video_path and not r.archive_failed)
                  for r in shown)
    st.session_state[DRAWN] = (group_id, _archived_ids(shown))
    with st.container(key=f"{K}cells"):
        st.fragment(live, run_every=1.0 if pending else None, key=f"{K}live")()

    with st.container(key=f"{K}player"):
        st.subheader("Synced playback")
        labels = {v.run.run_id: v.cell.label for v in views if v.run is not None}
        slots = [v.run if v.run is not None else
                 f"{v.cell.label}: {'crossed out' if v.cell.forbidden else 'not sent'}" for v in views]
        count = sync_player.grid(slots, services.archive, key=f"grid-{group_id[:10]}", labels=labels,
                                 columns=len(plan.spec.modes))
        if count == 0:
            st.caption("Finished cells play here together: one control plays, pauses and seeks them all.")
        elif count == 1:
            st.caption("One cell has finished; the others join as they finish.")
        if services.settings.uses_local_gateway and count:
            st.caption("Synthetic videos from the local gateway (not made by Kling).")


# ------------------------------------------------------------------ the page
params = query.QueryReader(st.query_params)
group_id = params.ident("group", quiet=True)  # a malformed id is "not found", like an unknown one
group_runs = services.ledger.group(group_id) if group_id else []
init_form()
note = seed_from_sources(group_runs, params)

st.title("Compare")
st.caption("One prompt (or up to four variants) across std 720p / pro 1080p, durations and aspect ratios: "
           "every cell priced before anything is sent, then played back in sync.")
if note:
    st.info(note, icon=":material/tune:")

if press_note := press.note_for(group_id if group_runs else None):
    with st.container(key=f"{K}press_note"):
        st.info(escape_md(press_note), icon=":material/info:")
if params.has("group") and not group_runs:
    st.warning("That grid was not found (the link may be mistyped). Build a new one below.",
               icon=":material/link_off:")
if group_runs:
    draw_group(group_id, group_runs)
    form_box = st.expander("New grid from these settings", expanded=False)
else:
    form_box = st.container()

with form_box, st.container(key=f"{K}form"):
    draw_form()
    grid_plan = compare.expand(current_spec(), services.settings.prices)
    draw_preview(grid_plan)
    draw_total_and_submit(grid_plan)
