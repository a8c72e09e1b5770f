"""One run as a card: state, progress, timing, the error in words, the player and the actions.

Why shared: Compose, History, the share view and Compare all show runs, and a run must look and act the
same everywhere (the same words for a failure, the same "not billed", the same re-run that restores
every setting). Cards only read the ledger; actions write through lib.playground.
"""
from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Sequence
from html import escape as escape_html
from typing import TYPE_CHECKING, Any

import streamlit as st

from lib import (
    links,
    live_reads,
    money,
    playground,
    presses,
    queue_estimate,
    spend_labels,
    state_words,
    takes,
)
from lib.durations import format_seconds
from lib.ledger import (
    ACTIVE,
    COMPLETED,
    FAILED,
    TIMED_OUT,
    UNKNOWN,
    UNREADABLE,
    Run,
)
from lib.ui import fragment_rerun, player, press, share_links, state, triage_controls, who
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.services import Services

ACTIONS = ("download", "share", "rerun", "take", "promote", "extend", "compare", "snippet", "triage", "chain")
VIEW_ACTIONS = ("download", "share", "compare", "snippet")  # what another user's run offers (sign-in)
COMPARE_PAGE = "pages/compare.py"


def state_badge(run: Run) -> None:
    look = state_words.badge(run.state)
    st.badge(escape_md(look.words), color=look.color, icon=look.icon)


def describe(run: Run) -> str:
    """'pro · 10 s · 16:9 · 2 images' (the effective settings, defaults applied)."""
    req = run.request
    parts = [req.effective_mode, f"{req.effective_duration} s", req.effective_aspect]
    if req.image_urls:
        parts.append("first + last frame" if len(req.image_urls) > 1 else "first frame")
    if req.references:  # TOAPIS_CONTRACT=latest fields, named so a card never hides them
        parts.append(f"{len(req.references)} reference image{'s' if len(req.references) > 1 else ''}")
    if req.audio is True:
        parts.append("Sound")
    return " · ".join(parts)


def timing(run: Run, now: float | None = None) -> str:
    """Elapsed time, and while running an ETA from the progress slope."""
    now = time.time() if now is None else now
    elapsed = playground.elapsed_seconds(run, now)
    if run.state == COMPLETED:
        took = run.seconds_to_finish
        return f"Finished in {format_seconds(took if took is not None else elapsed)}"
    text = f"Elapsed {format_seconds(elapsed)}"
    eta = playground.eta_seconds(run, now)
    if eta is not None:
        text += f" · about {format_seconds(eta)} left"
    return text


def compare_target(run: Run) -> tuple[str, dict[str, str]]:
    """Where "Open in compare" goes: ?group=<id>, or ?run=<id> for a run outside a group."""
    if run.group_id:
        return COMPARE_PAGE, {"group": run.group_id}
    return COMPARE_PAGE, {"run": run.run_id}


def _k(prefix: str, what: str, run: Run) -> str:
    return f"{prefix}_{what}_{run.run_id}"


def run_card(
    services: Services,
    run: Run,
    *,
    key: str | None = None,
    actions: Sequence[str] = ACTIONS,
    show_prompt: bool = True,
    show_video: bool = True,
    tick: bool = False,
) -> None:
    """Draw one run; `key` prefixes widget keys when the same run appears twice on a page. `tick`: the
    bar of a run in flight refreshes itself every second in its own small fragment (`live_runs`)."""
    prefix = key or "card"
    with st.container(border=True, key=f"{prefix}_{run.run_id}" if key else f"card_{run.run_id}"):
        if run.state == UNREADABLE:  # a ledger row this code cannot read: say so, offer nothing to press
            state_badge(run)
            st.caption(escape_md(run.error_message or ""))
            return
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            state_badge(run)
            if run.label:
                st.badge(escape_md(run.label), color="gray")
            if run.source == "rerun" and run.parent_id:
                st.badge("New take", color="blue", icon=":material/add_circle:")
            if run.group_id and (take := takes.badge(services.ledger.group(run.group_id), run)):
                st.badge(take, color="violet", icon=":material/view_week:")  # 'Take 2 of 3'
            who.owner_badge(services, run)
            cost = f" · ≈ {money.usd(run.est_cost)} (estimate)" if run.est_cost else ""
            st.caption(escape_md(describe(run)) + escape_md(cost))
        if show_prompt:
            st.text(shorten(run.request.prompt, 400) if run.request.prompt else "(prompt unknown)")
        mine = who.may_act(services, run)  # another user's run: look and share only (lib/owners.py)
        _status(services, run, prefix, recover=mine, tick=tick)
        if show_video and run.state == COMPLETED:
            # our archived copy, "Saving…", or why not (lib/playback.py); never a source swapped in place
            player.video(services, run, key=prefix)
        if "triage" in actions:  # stars, favourite, tags, note (its own fragment; read-only if not mine)
            triage_controls.run_marks(services, run, prefix)
        if not mine:
            actions = [a for a in actions if a in VIEW_ACTIONS]
        if actions:
            _actions(services, run, prefix, actions)


# A bar that moves without claiming a percentage: the gateway says 0 % for the whole queue, and an empty
# bar reads as "stuck". Plain CSS (st.html is sanitised; no script), labelled for screen readers.
_WAITING_BAR = """<div class="kp-wait" role="progressbar" aria-label="{label}" aria-busy="true"
 style="position:relative;height:0.5rem;border-radius:0.25rem;overflow:hidden;
 background:rgba(128,128,128,0.2)"><div style="position:absolute;top:0;bottom:0;width:35%;
 border-radius:0.25rem;background:{color};animation:kp-wait 1.4s ease-in-out infinite"></div></div>
<style>@keyframes kp-wait {{ 0% {{ left: -35%; }} 100% {{ left: 100%; }} }}
@media (prefers-reduced-motion: reduce) {{ .kp-wait div {{ animation: none; left: 0; width: 100%;
 opacity: 0.4; }} }}</style>"""


def _bar_color() -> str:
    """The theme's primary colour (as st.progress uses), if it is a plain hex colour."""
    color = str(st.get_option("theme.primaryColor") or "")
    return color if re.fullmatch(r"#[0-9A-Fa-f]{3,8}", color) else "#6C4DF6"


def progress_block(services: Services, run: Run) -> None:
    """The bar of a run in flight: its percentage once the gateway reports one; before that (waiting to
    send, queued, 0 %) a moving bar and how long runs of its kind usually take here."""
    progress = max(0, min(100, int(run.progress or 0)))
    if progress > 0:
        st.progress(progress / 100, text=f"{progress}% · {timing(run)}")
        return
    label = state_words.words(run.state)
    st.html(_WAITING_BAR.format(label=escape_html(label), color=_bar_color()))
    st.caption(escape_md(queue_estimate.for_run(services.ledger, run)))  # the badge above says the state


def _active_status(services: Services, run: Run) -> None:
    progress_block(services, run)
    if run.error_message:  # the worker's note while it waits (rate limit, gateway unreachable)
        st.caption(escape_md(run.error_message))


def _ticking_status(services: Services, run_id: str, drawn: Run) -> None:
    """A run in flight's bar, on its own once-a-second tick: the change token (shared by the process's
    ticks, lib/live_reads.py), the run as of that token (read once per change for the whole process), one
    element. When the list draws it, `drawn` is current. A run that has settled draws nothing here: the
    list's watcher redraws its whole card."""
    ledger = services.ledger
    run = drawn if _drawing.get() else live_reads.run(ledger, live_reads.token(ledger), run_id)
    if run is not None and run.state in ACTIVE:
        _active_status(services, run)


def live_status(services: Services, run: Run) -> None:
    """A run in flight's bar (and the worker's note) that ticks on its own inside live_runs, for layouts
    other than a card (a take's tile); elsewhere drawn once."""
    if _drawing.get():
        st.fragment(_ticking_status, run_every=LIVE_EVERY)(services, run.run_id, run)
    else:
        _active_status(services, run)


def _status(services: Services, run: Run, prefix: str, *, recover: bool = True, tick: bool = False) -> None:
    if run.state in ACTIVE and tick:
        st.fragment(_ticking_status, run_every=LIVE_EVERY)(services, run.run_id, run)
    elif run.state in ACTIVE:
        _active_status(services, run)
    elif run.state == COMPLETED:
        st.caption(timing(run))
    elif run.state == FAILED:
        st.error(escape_md(playground.explain(run)), icon=":material/error:")
        st.caption("Not billed: failed runs cost nothing.")
    elif run.state == UNKNOWN:
        st.warning(escape_md(playground.explain(run)), icon=":material/help:")
        if not run.task_id and recover:  # with a task id (the gateway forgot it) nothing to recover
            _recover_form(services, run, prefix)
    elif run.state == TIMED_OUT:
        st.warning(escape_md(playground.explain(run)), icon=":material/timer_off:")


def _recover_form(services: Services, run: Run, prefix: str) -> None:
    """Recover by task id: attach a task found elsewhere to this run, so the worker follows it."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        task_id = st.text_input("Recover by task id", key=_k(prefix, "recover_id", run),
                                placeholder="task_01…", help="The id the gateway gave for this run.")
        pressed = st.button("Recover", key=_k(prefix, "recover", run))
    if pressed:
        try:
            playground.recover(services, task_id, run_id=run.run_id, actor=who.current(services))
        except Exception as exc:  # noqa: BLE001 - ValueError/LedgerError: words for the user
            st.error(escape_md(str(exc)))
        else:
            st.toast("Following that task now.", icon=":material/sync:")


def press_rerun(run_id: str) -> None:
    """Re-run: the run's every setting back in Compose (free: nothing is sent until Generate); a card's and
    a take tile's button share it."""
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None:
        return
    try:
        request = playground.rerun(services, run, actor=who.current(services))
    except ValueError as exc:  # owners.NotYours: another user's run
        st.toast(escape_md(str(exc)), icon=":material/block:")
        return
    state.request_restore(request)
    state.navigate("app.py")


def promote_action(run_id: str) -> str:
    """The press-memory action of "Promote" for one run (the Compare page's cells share it)."""
    return f"promote:{run_id}"


def extend_action(run_id: str) -> str:
    """The press-memory action of "Extend" of one run."""
    return f"extend:{run_id}"


def take_action(run_id: str) -> str:
    """The press-memory action of "Another take" of one run (the Compare page's cells share it)."""
    return f"take:{run_id}"


def toast_outcome(outcome: playground.SubmitOutcome | None, decision: presses.Decision, done: str,
                  what: str) -> None:
    """One toast for a card press: sent, a repeat (nothing new), a new take, or why nothing was sent."""
    if outcome is None:  # held: another button was pressed a moment ago
        st.toast(escape_md(presses.too_soon(decision)), icon=":material/pan_tool:")
    elif outcome.refused:
        st.toast(escape_md(outcome.refused), icon=":material/block:")
    elif not outcome.ok:
        st.toast(escape_md("; ".join(p.message for p in outcome.errors)), icon=":material/error:")
    elif not outcome.created:
        words = presses.already_sent(decision, f"the {what} is on its way")
        st.toast(escape_md(words), icon=":material/info:")
    elif decision.kind == presses.NEW_TAKE:
        st.toast(escape_md(presses.new_take(decision, what)), icon=":material/add_circle:")
    else:
        st.toast(escape_md(done), icon=":material/send:")


PROMOTED = "Promoted: a pro run of the same length is on its way (linked to this one)."
EXTENDED = "Extended: a longer run of the same prompt and frames is on its way (linked to this one)."
TAKEN = "New take: a new run with the same settings is on its way (its card is marked New take)."


def _press_child(action: str, inputs: dict, make: Callable[[str], playground.SubmitOutcome], done: str,
                 what: str) -> None:
    """One new run per press of a card's spending button, through this tab's press memory: a repeat in
    the window writes nothing, a press that wrote nothing is forgotten so the next one is judged afresh."""
    decision = press.decide(action, inputs)
    if decision.kind == presses.TOO_SOON:
        toast_outcome(None, decision, done, what)
        return
    outcome = make(decision.ids[0])
    if not outcome.ok:
        press.forget(action)
    toast_outcome(outcome, decision, done, what)


def press_promote(run_id: str, done: str = PROMOTED) -> None:
    """A press of "Promote" (callback): one pro child per press, however fast the clicks come."""
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None:
        return
    _press_child(promote_action(run_id), playground.promote_request(run.request).to_dict(),
                 lambda rid: playground.promote(services, run, run_id=rid, actor=who.current(services)),
                 done, "pro run")


def press_extend(run_id: str, done: str = EXTENDED) -> None:
    """A press of "Extend to 10 s" (callback): one longer child per press, through the same press rules."""
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None:
        return
    target = playground.extend_request(run.request)
    if target is None:
        st.toast("This run is already as long as its settings allow.", icon=":material/info:")
        return
    _press_child(extend_action(run_id), target.to_dict(),
                 lambda rid: playground.extend(services, run, run_id=rid, actor=who.current(services)),
                 done, "longer run")


def press_take(run_id: str, done: str = TAKEN) -> None:
    """A press of "Another take" (callback): one new run per press, however fast the clicks come."""
    services = state.services()
    run = services.ledger.get(run_id)
    if run is None:
        return
    _press_child(take_action(run_id), run.params,
                 lambda rid: playground.another_take(services, run, run_id=rid, actor=who.current(services)),
                 done, "take")


def take_label(services: Services, run: Run) -> str | None:
    """'Another take · ≈ $0.18', or None when the run's settings cannot be sent again (unknown, invalid)."""
    if not run.request.prompt:
        return None
    try:
        cost = playground.estimate(services, run.request)
    except ValueError:
        return None
    return spend_labels.take(cost)


def promote_label(services: Services, run: Run) -> str | None:
    """'Promote · Pro 1080p · 5 s · ≈ $0.31' for a finished std run with its settings; None otherwise."""
    if not run.request.prompt or run.request.effective_mode == "pro":
        return None
    return spend_labels.priced("Promote", playground.promote_request(run.request), services.settings.prices)


def extend_label(services: Services, run: Run) -> str | None:
    """'Extend to 10 s · ≈ $0.37', or None when no longer duration is allowed (15 s, or 10 s with frames)."""
    target = playground.extend_request(run.request) if run.request.prompt else None
    return None if target is None else spend_labels.extend(target, services.settings.prices)


def _on_compare(run_id: str) -> None:
    run = state.services().ledger.get(run_id)
    if run is not None:
        page, params = compare_target(run)
        state.navigate(page, params)


def _actions(services: Services, run: Run, prefix: str, actions: Sequence[str]) -> None:
    with st.container(horizontal=True, gap="small", key=_k(prefix, "actions", run)):
        if "download" in actions and run.video_path and services.archive.exists(run.video_path):
            # from the archive route (streamed, any storage backend), not bytes held in the session
            st.link_button("Download", player.download_url(services, run.video_path),
                           icon=":material/download:", key=_k(prefix, "download", run))
        if "rerun" in actions:
            st.button("Re-run", key=_k(prefix, "rerun", run), icon=":material/replay:",
                      help="Fill Compose with every setting of this run, images included. Free: nothing "
                           "is sent until you press Generate.",
                      on_click=press_rerun, args=(run.run_id,))
        # Spending buttons only on settled runs: a new card slides in at the top, and a click meant for
        # the button below must not land on a spending button of the run it just made.
        if "take" in actions and run.state not in ACTIVE and (label := take_label(services, run)):
            st.button(label, key=_k(prefix, "take", run), icon=":material/add_circle:",
                      help="Send these same settings again as a new run: a new take (the model makes a "
                           "different video each time). Priced on the button.",
                      on_click=press_take, args=(run.run_id,))
        if "promote" in actions and run.state == COMPLETED and (label := promote_label(services, run)):
            st.button(label, key=_k(prefix, "promote", run), icon=":material/upgrade:",
                      help="The same prompt, frames and duration as pro 1080p, linked to this run. "
                           "Priced on the button.",
                      on_click=press_promote, args=(run.run_id,))
        if "extend" in actions and run.state == COMPLETED and (label := extend_label(services, run)):
            st.button(label, key=_k(prefix, "extend", run), icon=":material/more_time:",
                      help="A new, longer video of the same prompt and frames in the same mode (not a "
                           "continuation of this one), linked to this run. Priced on the button.",
                      on_click=press_extend, args=(run.run_id,))
        if "chain" in actions:  # Continue from a frame; Sequence (lib/ui/chain_controls.py)
            from lib.ui import chain_controls

            chain_controls.card_buttons(services, run, prefix)
        if "compare" in actions:
            st.button("Open in compare", key=_k(prefix, "compare", run), icon=":material/compare:",
                      on_click=_on_compare, args=(run.run_id,))
        if "share" in actions:
            with st.popover("Share", icon=":material/link:", key=_k(prefix, "share", run)):
                share_links.run_link(services, run)
        if "snippet" in actions:
            with st.popover("Code", icon=":material/code:", key=_k(prefix, "snippet", run)):
                base = links.snippet_base(services.settings)
                st.caption("The same request for the gateway. Set TOAPIS_API_KEY first; "
                           "the key is never shown here.")
                st.code(links.curl_snippet(run.request, base), language="bash")
                st.code(links.python_snippet(run.request, base), language="python")


def is_live(run: Run) -> bool:
    """Still changing: in flight, or done but its video not archived yet."""
    return run.state in ACTIVE or (run.state == COMPLETED and not run.video_path and not run.archive_failed)


LIVE_EVERY = 1.0
_drawing: contextvars.ContextVar[bool] = contextvars.ContextVar("card_list_drawing", default=False)
_registering: contextvars.ContextVar[bool] = contextvars.ContextVar("card_list_registering", default=False)


def looks(runs: Sequence[Run]) -> tuple:
    """What a list of cards shows, apart from the bars of runs in flight (those tick on their own): which
    runs, in which order, their state, label, and whether their video is in or archiving gave up."""
    return tuple((r.run_id, r.state, r.label, bool(r.video_path), bool(r.archive_failed)) for r in runs)


def live_runs(
    services: Services,
    load: Callable[[], Sequence[Run]],
    *,
    key: str,
    empty: str | None = None,
    draw: Callable[[Services, Sequence[Run]], None] | None = None,
    **card_kwargs: Any,
) -> None:
    """Cards for `load()` that keep themselves current while any of them is live, or while any run is in
    flight (so a run started elsewhere shows up without a full rerun of the page).

    Why three parts: a fragment tick must redraw everything it drew, and redrawing 8 cards every second
    cost 18-40 ms per session (bench/RESULTS.md figure 2). So the cards sit in a fragment (`key`) with no
    timer; each run in flight ticks only its own bar (`_ticking_status`); and a watcher that draws
    nothing ticks every second, reads the ledger's change token, and only when the token moved and the
    list looks different (a new run, a state change, a video saved) reruns the cards' fragment. When the
    last one settles and nothing is in flight it asks for one full rerun, which re-registers everything
    without a timer.
    """
    ledger = services.ledger
    seen_key = f"_cards_seen_{key}"
    token = ledger.changes()  # before the list: a write in between then shows as a new token
    pending = [list(load())]  # the full run draws what it has just read
    live = any(is_live(r) for r in pending[0])
    ticking = live or ledger.in_flight() > 0

    def cards() -> None:
        seen_token = token if pending else ledger.changes()
        current = pending.pop() if pending else list(load())
        st.session_state[seen_key] = (seen_token, looks(current))
        if not current and empty:
            st.caption(empty)
        drawing = _drawing.set(True)
        try:
            if draw is not None:  # the page's own layout of the same runs (Compose: takes as strips)
                draw(services, current)
            else:
                for run in current:
                    run_card(services, run, tick=True, **card_kwargs)
        finally:
            _drawing.reset(drawing)

    def watch() -> None:
        if _registering.get():
            return  # the full run has just drawn the list
        seen = st.session_state.get(seen_key)
        now = live_reads.token(ledger)
        if seen is not None and seen[0] == now:
            return  # nothing changed: the usual tick
        current = list(load())
        if seen is not None and looks(current) == seen[1]:
            st.session_state[seen_key] = (now, seen[1])  # progress only: the bars tick on their own
            return
        if live and not any(is_live(r) for r in current) and not ledger.in_flight():
            st.rerun()
        fragment_rerun.rerun(key)

    st.fragment(cards, key=key)()
    registering = _registering.set(True)
    try:
        st.fragment(watch, run_every=LIVE_EVERY if ticking else None, key=f"{key}_watch")()
    finally:
        _registering.reset(registering)
