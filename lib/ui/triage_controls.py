"""Drawing triage: the marks row under a finished run, History's triage filters, columns and stats, and
Compare's "Which is better?" with its blind dialog.

Why each run's row is its own fragment: a star, the favourite switch or a saved note reruns only that
row (not the page, not the cards around it), so marking twenty runs costs twenty small reruns, never a
storm of full ones. The ledger is the truth: every draw reads the run's marks, and a widget is set from
the ledger only when the ledger's value changed since this tab last saw it (another tab, a reload), so a
person's unsaved words in the tag or note box are never overwritten. Rules and words are lib/triage.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from lib import compare, money, pairs, presses, triage
from lib.contract import MODE_LABELS
from lib.ledger import COMPLETED, LedgerError, Run, RunFilter
from lib.ui import player, state, who
from lib.ui.text import escape_md, shorten

if TYPE_CHECKING:
    from lib.ledger import Ledger
    from lib.services import Services

_MISSING = object()
ERROR_SUFFIX = "_error"
SAVED_SUFFIX = "_saved"
OPEN_KEY = "_verdict_open"          # (run_a, run_b, blind) of the open "Which is better?" dialog
REVEALED_KEY = "_verdict_revealed"  # the pair whose choice was just made: labels shown
VERDICT_NOTE_KEY = "_verdict_note"
VERDICT_BOOK = "_verdict_presses"   # its own press memory: a verdict spends nothing, so it holds nothing
BLIND_KEY = "tri_blind"


# ---------------------------------------------------------------- the marks row of one run

def _sync(key: str, value: Any) -> None:
    """Set a widget from the ledger when the ledger's value is new to this tab, or when the widget has no
    value (Streamlit drops a widget's value once a run does not draw it: another History row was open)."""
    seen = f"{key}__seen"
    if key not in st.session_state or st.session_state.get(seen, _MISSING) != value:
        st.session_state[key] = value
        st.session_state[seen] = value


def _apply(run_id: str, k: str, resync: Sequence[str] = (), **changes: Any) -> bool:
    """Write some marks as the person in this session; words in the row when refused (and the widgets
    named in `resync` go back to the ledger's value, so no star stays lit that was not stored)."""
    services = state.services()
    run = services.ledger.get(run_id)
    try:
        if run is None:
            raise LedgerError("That run is not in the ledger any more.")
        triage.edit(services.ledger, services.settings.sign_in, run, who.current(services), **changes)
    except (ValueError, LedgerError) as exc:  # TriageError, owners.NotYours: words
        st.session_state[k + ERROR_SUFFIX] = str(exc)
        for key in resync:
            st.session_state.pop(f"{key}__seen", None)
        return False
    st.session_state.pop(k + ERROR_SUFFIX, None)
    return True


def _on_rating(run_id: str, k: str) -> None:
    value = st.session_state.get(k + "_rating")
    _apply(run_id, k, (k + "_rating",), rating=None if value is None else int(value) + 1)


def _on_favourite(run_id: str, k: str) -> None:
    _apply(run_id, k, (k + "_fav",), favourite=bool(st.session_state.get(k + "_fav")))


def _on_save(run_id: str, k: str) -> None:
    ss = st.session_state
    if _apply(run_id, k, tags=ss.get(k + "_tags") or "", note=ss.get(k + "_note")):
        st.session_state[k + SAVED_SUFFIX] = True


def _body(services: Services, run_id: str, k: str, editable: bool) -> None:
    marks = services.ledger.get_triage(run_id)
    if not editable and marks.empty:
        return
    _sync(k + "_rating", None if marks.rating is None else marks.rating - 1)
    with st.container(horizontal=True, vertical_alignment="center", gap="small", key=k):
        st.feedback("stars", key=k + "_rating", disabled=not editable, on_change=_on_rating,
                    args=(run_id, k))
        if editable:
            _sync(k + "_fav", marks.favourite)
            st.toggle("Favourite", key=k + "_fav", on_change=_on_favourite, args=(run_id, k),
                      help="Favourites can be listed alone in History.")
        elif marks.favourite:
            st.badge("Favourite", icon=":material/favorite:", color="red")
        for tag in marks.tags:
            st.badge(escape_md(f"#{tag}"), color="gray")
        if editable:
            _sync(k + "_tags", ", ".join(marks.tags))
            _sync(k + "_note", marks.note)
            label = "Tags & note" if (marks.tags or marks.note) else "Add tags or a note"
            with st.popover(label, icon=":material/sell:", key=k + "_pop"), \
                    st.form(k + "_form", border=False, enter_to_submit=False):
                st.text_input("Tags", key=k + "_tags", placeholder="keeper, night, wide shot",
                              help=f"Up to {triage.MAX_TAGS} tags of at most {triage.MAX_TAG} characters, "
                                   "separated by commas; stored in lower case.")
                st.text_area("Note", key=k + "_note", height=100,
                             help=f"At most {triage.MAX_NOTE:,} characters. Seen by your team, never on a "
                                  "share link.")
                st.form_submit_button("Save", icon=":material/save:", on_click=_on_save, args=(run_id, k))
    if marks.note:
        st.caption(escape_md("Note: " + shorten(marks.note, 160)))
    if error := st.session_state.get(k + ERROR_SUFFIX):
        st.error(escape_md(str(error)) + " Nothing was changed.", icon=":material/error:")
    if st.session_state.pop(k + SAVED_SUFFIX, False):
        st.toast("Tags and note saved.", icon=":material/check:")


def run_marks(services: Services, run: Run, prefix: str) -> None:
    """The marks row under a finished run: stars, favourite, tags and a note for its owner (or anyone for
    a team run); read-only marks for another signed-in person; nothing for a run not finished."""
    if run.state != COMPLETED or run.unreadable:
        return
    editable = who.may_act(services, run)
    k = f"{prefix}_tri_{run.run_id}"
    st.fragment(lambda: _body(services, run.run_id, k, editable), key=k + "_frag")()


# ---------------------------------------------------------------- History

HIST_RATING_KEY = "hist_min_rating"
HIST_FAV_KEY = "hist_fav"
HIST_TAG_KEY = "hist_tag"
HIST_SORT_KEY = "hist_sort"


@st.cache_data(ttl=60, show_spinner=False, max_entries=8)
def _tags_in_use(ledger_key: str, version: tuple) -> list[str]:
    del ledger_key, version  # cache keys only
    return state.services().ledger.triage_tags()


def history_filters(services: Services, flt: RunFilter, on_change: Callable[[], None]) -> RunFilter:
    """Rating (at least), favourites only, one tag and the order; applied in SQL with the other filters."""
    ledger = services.ledger
    tags = _tags_in_use(repr(ledger), ledger.changes())
    with st.container(horizontal=True, gap="small", vertical_alignment="bottom", key="hist_triage_filters"):
        # 0 and "" mean "any" (a None option would draw a clear button beside "Any")
        rating = st.selectbox("Rating", [0, 5, 4, 3, 2, 1], key=HIST_RATING_KEY, on_change=on_change,
                              format_func=lambda v: f"{triage.stars(v)} or more" if v else "Any", width=160)
        tag = st.selectbox("Tag", ["", *tags], key=HIST_TAG_KEY, on_change=on_change, width=170,
                           format_func=lambda t: f"#{t}" if t else "Any")
        sort = st.segmented_control("Order", triage.SORTS, default="newest", key=HIST_SORT_KEY,
                                    format_func=lambda s: triage.SORT_LABELS.get(s, s), on_change=on_change,
                                    required=True)
        favourite = st.toggle("Favourites only", key=HIST_FAV_KEY, on_change=on_change)
    return replace(flt, min_rating=triage.min_rating_of(rating), favourite=bool(favourite),
                   tag=triage.tag_filter_of(tag), sort=triage.sort_of(sort))


COLUMNS = ("rating", "favourite", "tags")


def add_columns(table: pd.DataFrame, runs: Sequence[Run], ledger: Ledger) -> None:
    """History's rating, favourite and tags columns for one page of runs (one query)."""
    marks = ledger.triage_many(r.run_id for r in runs)
    none = triage.Triage("")
    table["rating"] = [triage.stars(marks.get(r.run_id, none).rating) for r in runs]
    table["favourite"] = ["♥" if marks.get(r.run_id, none).favourite else "" for r in runs]
    table["tags"] = [" ".join(f"#{t}" for t in marks.get(r.run_id, none).tags) for r in runs]


def mark_compact(compact: pd.DataFrame, table: pd.DataFrame) -> None:
    """The phone's one-column rows start with the run's stars and ♥ when it has them."""
    if not len(compact):
        return
    marks = zip(table["rating"], table["favourite"], strict=True)
    heads = [" ".join(p for p in (rating, fav) if p) for rating, fav in marks]
    compact["run"] = [f"{h} · {run}" if h else run for h, run in zip(heads, compact["run"], strict=True)]


def column_config() -> dict[str, Any]:
    cc = st.column_config
    return {"rating": cc.TextColumn("Rating", width="small"),
            "favourite": cc.TextColumn("♥", width=40, help="Favourite"),
            "tags": cc.TextColumn("Tags", width="small")}


@st.cache_data(ttl=60, show_spinner=False, max_entries=8)
def _verdict_stats(ledger_key: str, version: tuple) -> triage.VerdictStats:
    del ledger_key, version  # cache keys only
    return state.services().ledger.verdict_stats()


def verdict_stats(services: Services) -> None:
    """History's "Was pro worth it?": how often pro beat std, per prompt and overall, and what it cost."""
    ledger = services.ledger
    stats = _verdict_stats(repr(ledger), ledger.changes())
    with st.container(key="hist_verdicts"):
        st.markdown("**Was pro worth it?** (from Which is better? on Compare)")
        st.write(escape_md(triage.stats_words(stats.overall)))
        rows = triage.stats_table(stats)
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
                "extra paid for pro": st.column_config.NumberColumn(format="$%.2f")})


# ---------------------------------------------------------------- Compare: Which is better?

def _ready(run: Run | None) -> bool:
    return run is not None and run.state == COMPLETED and bool(run.video_path)


def grid_pairs(views: Sequence[compare.CellView]) -> list[tuple[str, Run, Run]]:
    """(label, std run, pro run) for each row of a grid whose std and pro cells both have a video."""
    rows: dict[tuple[int, int, str], dict[str, Any]] = {}
    for view in views:
        if view.cell.forbidden is None and _ready(view.run):
            req = view.cell.request
            rows.setdefault((view.cell.variant, req.effective_duration, req.effective_aspect), {})[
                req.effective_mode] = view.run
    n_variants = len({v.cell.variant for v in views})
    out = []
    for (variant, duration, aspect), by_mode in rows.items():
        if "std" in by_mode and "pro" in by_mode:
            head = f"P{variant + 1} · " if n_variants > 1 else ""
            out.append((f"{head}{duration} s · {aspect}", by_mode["std"], by_mode["pro"]))
    return out


def _judge(services: Services) -> str:
    return who.current(services).owner or triage.TEAM_JUDGE


def _mode_words(run: Run) -> str:
    mode = run.request.effective_mode
    return f"{MODE_LABELS.get(mode, mode)} · ≈ {money.usd(run.est_cost)}"


def _verdict_words(verdict: triage.Verdict, std: Run, pro: Run) -> str:
    won = pro if verdict.winner == pro.run_id else std
    how = "blind" if verdict.blind else "with labels"
    return f"Your choice: {MODE_LABELS.get(won.request.effective_mode, '')} ({how})."


def _on_open(run_a: str, run_b: str) -> None:
    st.session_state[OPEN_KEY] = (run_a, run_b, bool(st.session_state.get(BLIND_KEY, True)))
    st.session_state.pop(REVEALED_KEY, None)
    st.session_state.pop(VERDICT_NOTE_KEY, None)


def _on_close() -> None:
    for key in (OPEN_KEY, REVEALED_KEY, VERDICT_NOTE_KEY):
        st.session_state.pop(key, None)


def _on_choose(run_a: str, run_b: str, winner: str, blind: bool) -> None:
    """A press of "A is better" (callback): one verdict however fast the clicks (a repeat in the press
    window writes nothing; the ledger keeps one row per pair and judge); a new choice replaces it."""
    services = state.services()
    pair = triage.pair_ids(run_a, run_b)
    action = f"verdict:{pair[0]}|{pair[1]}"
    with presses.LOCK:
        book = st.session_state.setdefault(VERDICT_BOOK, {})
        decision = presses.decide(book, action, {"winner": winner, "blind": blind},
                                  new_ids=lambda: [services.ledger.new_id()],
                                  window=services.settings.press_window, guard=0.0)
    if decision.same:
        st.session_state[VERDICT_NOTE_KEY] = ("Already recorded: this press repeated your choice of "
                                              "a moment ago, so it was counted once.")
        st.session_state[REVEALED_KEY] = pair
        return
    try:
        _, changed = triage.judge(services.ledger, services.settings.sign_in, who.current(services),
                                  run_a, run_b, winner, blind=blind)
    except (ValueError, LedgerError) as exc:
        with presses.LOCK:
            presses.forget(book, action)
        st.session_state[VERDICT_NOTE_KEY] = f"Not recorded: {exc}"
        return
    st.session_state[VERDICT_NOTE_KEY] = ("Recorded." if changed else
                                          "Already recorded: that was your choice already.")
    st.session_state[REVEALED_KEY] = pair


@st.dialog("Which is better?", width="large", on_dismiss=_on_close)
def _dialog(services: Services, std: Run, pro: Run, blind: bool) -> None:
    pair = triage.pair_ids(std.run_id, pro.run_id)
    revealed = st.session_state.get(REVEALED_KEY) == pair
    by_id = {std.run_id: std, pro.run_id: pro}
    order = triage.blind_order(std.run_id, pro.run_id) if blind else (std.run_id, pro.run_id)
    verdict = services.ledger.verdict_for(std.run_id, pro.run_id, _judge(services))
    if blind and not revealed:
        st.caption("Blind: which video is std and which is pro, and their prices, stay hidden until you "
                   "choose. Watch both, then press the better one.")
    cols = st.columns(2, gap="small")
    for name, col, run_id in zip(("A", "B"), cols, order, strict=True):
        run = by_id[run_id]
        with col, st.container(border=True, key=f"tri_side_{name}"):
            title = name if blind and not revealed else f"{name} · {_mode_words(run)}"
            st.markdown(f"**{escape_md(title)}**")
            player.video(services, run, key=f"tri_{name}")
            chosen = verdict is not None and verdict.winner == run_id and (revealed or not blind)
            st.button(f"{name} is better", key=f"tri_choose_{name}", icon=":material/thumb_up:",
                      type="primary" if chosen else "secondary", width="stretch",
                      on_click=_on_choose, args=(std.run_id, pro.run_id, run_id, blind))
    note = st.session_state.get(VERDICT_NOTE_KEY)
    if revealed and verdict is not None:
        won = "A" if verdict.winner == order[0] else "B"
        lost = "B" if won == "A" else "A"
        words = (f"{note} You chose {won}: {_mode_words(by_id[verdict.winner])}, over {lost}: "
                 f"{_mode_words(by_id[order[1] if won == 'A' else order[0]])}.")
        if blind:
            words += " The labels were hidden until you chose."
        with st.container(key="tri_reveal"):
            st.success(escape_md(words), icon=":material/visibility:")
        st.caption("Changed your mind? Press the other one: it replaces this choice.")
    elif note:
        st.error(escape_md(note), icon=":material/error:")
    if st.button("Done", key="tri_done"):  # the dialog is a fragment: only a full rerun closes it
        _on_close()
        st.rerun()


def _verdict_rows(services: Services, items: Sequence[tuple[str, Run, Run]], key: str) -> None:
    judge = _judge(services)
    with st.container(key=f"{key}_verdicts", border=True):
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.markdown("**Which is better?**")
            st.toggle("Blind", value=True, key=BLIND_KEY,
                      help="Hide which is std and which is pro, and their prices, until you choose (the "
                           "order is shuffled per pair and stays the same for that pair).")
        for i, (label, std, pro) in enumerate(items):
            verdict = services.ledger.verdict_for(std.run_id, pro.run_id, judge)
            with st.container(horizontal=True, vertical_alignment="center", gap="small",
                              key=f"{key}_pair_{i}"):
                st.caption(escape_md(label))
                if verdict is not None:
                    st.caption(escape_md(_verdict_words(verdict, std, pro)))
                st.button("Change my choice" if verdict else "Choose", key=f"{key}_judge_{i}",
                          icon=":material/balance:", on_click=_on_open, args=(std.run_id, pro.run_id))
    opened = st.session_state.get(OPEN_KEY)
    for _, std, pro in items:
        if opened and {opened[0], opened[1]} == {std.run_id, pro.run_id}:
            _dialog(services, std, pro, bool(opened[2]))


def grid_verdicts(services: Services, views: Sequence[compare.CellView], key: str = "tri_grid") -> None:
    """Under a Compare grid: Which is better? for each std/pro pair whose videos are both archived."""
    items = grid_pairs(views)
    if items:
        _verdict_rows(services, items, key)


def pair_verdict(services: Services, run: Run) -> None:
    """Under Compare's "this run beside its pair": the same choice for the one pair."""
    other = pairs.find_pair(services.ledger, run)
    if other is None or not _ready(run) or not _ready(other):
        return
    std, pro = (run, other) if run.request.effective_mode == "std" else (other, run)
    if {std.request.effective_mode, pro.request.effective_mode} != {"std", "pro"}:
        return
    req = run.request
    _verdict_rows(services, [(f"{req.effective_duration} s · {req.effective_aspect}", std, pro)], "tri_pair")
