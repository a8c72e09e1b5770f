"""History and share-view logic: filters, table rows, countdowns, stats and grid queries, with no UI.

The pages only draw what this module computes, so every rule (what "time to finish" means, how a date range
becomes a database filter, when a gateway URL expires, what a share link may point at) is tested here
without a browser. Reads go through the ledger a page at a time (`list_runs`/`count_runs` with
LIMIT/OFFSET), so a history of 100,000 runs costs a page what a history of 100 does.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import time as _time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lib import contract, money, query, state_words
from lib.durations import countdown, format_seconds
from lib.ledger import COMPLETED, FAILED, IN_PROGRESS, QUEUED, UNREADABLE, UNREADABLE_LABEL, RunFilter

if TYPE_CHECKING:
    import pandas as pd

    from lib.ledger import Ledger, Run

PAGE_SIZE = 25
SPEND_DAYS = 30
GATEWAY_URL_LIFETIME = 24 * 3600.0   # the gateway's video URLs last 24 h (docs/api-contract.md §7.3)
MAX_FILTER_TEXT = 200

NOT_FOUND_MESSAGE = "This link does not match any run. Check you copied the whole link."
NO_TARGET_MESSAGE = (
    "This page shows a shared run or comparison. Open it from a share link (…/run?id=…), "
    "or pick a run in History."
)

STATE_LABELS = state_words.FILTER_LABELS  # the words people read (lib.state_words); CSV keeps raw states

TABLE_COLUMNS = (
    "poster", "state", "mode", "duration", "aspect", "prompt", "est_cost", "time_to_finish",
    "created", "video", "run_id",
)


# ---------------------------------------------------------------- filters and paging

def tz_from_name(name: str | None) -> tzinfo:
    """The browser's IANA zone (st.context.timezone), or UTC when it is unknown or not a real zone."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_filter(
    text: str | None = None,
    states: Iterable[str] = (),
    modes: Iterable[str] = (),
    durations: Iterable[int | str] = (),
    dates: date | Sequence[date] | None = None,
    tz: tzinfo = UTC,
    group_id: str | None = None,
) -> RunFilter:
    """Widget values -> the ledger's RunFilter; unknown values are dropped rather than matching nothing."""
    # no control characters: PostgreSQL refuses a NUL in a LIKE pattern, and none belongs in a search
    text_filter = query.clean_text(text or "", multiline=False).strip()[:MAX_FILTER_TEXT] or None
    known_states = tuple(s for s in states if s in STATE_LABELS)
    known_modes = tuple(m for m in modes if m in contract.MODES)
    known_durations = [v for d in durations if (v := query.ascii_int(d)) in contract.LATEST_DURATIONS]
    since, until = date_bounds(dates, tz)
    return RunFilter(
        text=text_filter,
        states=known_states,
        modes=known_modes,
        durations=tuple(known_durations),
        since=since,
        until=until,
        group_id=group_id,
    )


def date_bounds(dates: date | Sequence[date] | None, tz: tzinfo = UTC) -> tuple[float | None, float | None]:
    """(since, until) Unix seconds: from 00:00 of the first day to 00:00 after the last, in the viewer's zone.

    st.date_input returns a 1-tuple while the second date is still being picked: that means "from then on".
    """
    if dates is None:
        return None, None
    picked = [dates] if isinstance(dates, date) else [d for d in dates if isinstance(d, date)]
    if not picked:
        return None, None
    since = datetime.combine(min(picked), time.min, tzinfo=tz).timestamp()
    if len(picked) < 2:
        return since, None
    end = max(picked) + timedelta(days=1)
    return since, datetime.combine(end, time.min, tzinfo=tz).timestamp()


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    """At least one page, so the pager always has something to show."""
    return max(1, math.ceil(max(0, total) / page_size))


def clamp_page(page: int | None, total: int, page_size: int = PAGE_SIZE) -> int:
    """The page asked for (by the pager or a stale session), brought inside 1..page_count."""
    if page is None:
        return 1
    return min(max(1, int(page)), page_count(total, page_size))


def page_offset(page: int, page_size: int = PAGE_SIZE) -> int:
    return (max(1, page) - 1) * page_size


def page_caption(page: int, total: int, page_size: int = PAGE_SIZE) -> str:
    """'Runs 26–50 of 120': what the table holds, so a pager never hides how much there is."""
    if total <= 0:
        return "No runs match these filters."
    if total == 1:
        return "1 run"
    first = page_offset(page, page_size) + 1
    last = min(total, first + page_size - 1)
    return f"Runs {first:,}–{last:,} of {total:,}"


# ---------------------------------------------------------------- per-run facts

def time_to_finish(run: Run) -> float | None:
    """Seconds from sending to finishing: the ledger's own definition, so table and stats agree."""
    return run.seconds_to_finish


def is_archived(run: Run) -> bool:
    return bool(run.video_path) and run.archived_at is not None


def expiry_of(run: Run) -> float | None:
    """When the gateway's URL for this run stops working: its expires_at, else finish + 24 h."""
    if run.expires_at is not None:
        return float(run.expires_at)
    if not run.video_url:
        return None
    done = run.gateway_completed_at or run.completed_at
    return None if done is None else float(done) + GATEWAY_URL_LIFETIME


def expiry_text(run: Run, now: float) -> str:
    """'archived', or the gateway URL's countdown ('expires in 23 h 12 min' / 'expired 2 h 00 min ago')."""
    if is_archived(run):
        return "archived"
    if run.state in (FAILED, UNREADABLE):
        return "no video"
    if run.state != COMPLETED:
        return "not finished"
    expires = expiry_of(run)
    if expires is None:
        return "not archived"
    left = expires - now
    if left <= 0:
        return f"expired {format_seconds(-left)} ago"
    return f"expires in {countdown(left)}"


def state_label(run: Run) -> str:
    """The card's words for the run's state (lib.state_words), with the progress while it runs."""
    label = state_words.words(run.state)
    if run.state in (QUEUED, IN_PROGRESS) and run.progress:
        return f"{label} {int(run.progress)}%"
    return label


def mode_label(mode: str | None) -> str:
    return contract.MODE_LABELS.get(mode or "", mode or "—")


def cost_text(run: Run) -> str:
    """The estimated cost; a run the gateway cannot have charged says "not billed"."""
    base = contract.format_estimate(run.est_cost or 0.0)
    return base if run.billed else f"{base} · not billed"


def to_utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(float(ts), tz=UTC)


def format_time(ts: float | None, tz: tzinfo = UTC) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), tz=tz).strftime("%Y-%m-%d %H:%M:%S")


def has_settings(run: Run) -> bool:
    """False for a run recovered by task id: the ledger only knows its task, not what was asked."""
    return bool((run.params or {}).get("prompt"))


# ---------------------------------------------------------------- table rows

def table_rows(
    runs: Iterable[Run], now: float, poster_url: Callable[[Run], str | None]
) -> list[dict[str, Any]]:
    """One dict per run for st.dataframe: plain values only, so prompts are shown as text, never markup."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        req = run.request
        rows.append({
            "poster": poster_url(run),
            "state": state_label(run),
            "mode": run.mode or "—",
            "duration": f"{run.duration} s" if run.duration else "—",
            "aspect": run.aspect_ratio or "—",
            "prompt": req.prompt if has_settings(run) else _no_settings(run),
            "est_cost": money.cents(run.est_cost),  # rounded here: the column only formats
            "time_to_finish": format_seconds(time_to_finish(run)),
            "created": to_utc(run.created_at),
            "video": expiry_text(run, now),
            "run_id": run.run_id,
        })
    return rows


def compact_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The phone's one-cell rows, from table_rows(): state, mode and duration first (they fit on a narrow
    screen), then the prompt, so a row says what the run is without scrolling sideways."""
    out = []
    for row in rows:
        prompt = " ".join(str(row.get("prompt") or "").split())
        out.append({"run": f"{row['state']} · {row['mode']} · {row['duration']} · {prompt}",
                    "run_id": str(row["run_id"])})
    return out


# ---------------------------------------------------------------- detail panel

def _no_settings(run: Run) -> str:
    """What the prompt cell says when the ledger has no settings for a run."""
    if run.state == UNREADABLE:
        return f"({UNREADABLE_LABEL}: its record in the ledger cannot be read)"
    return "(recovered by task id: settings unknown)"


def parameter_items(run: Run) -> list[tuple[str, str]]:
    """Every request setting, with the gateway default named where the run left a field unset."""
    if run.state == UNREADABLE:
        return [("Model", contract.MODEL), ("Settings", f"unknown ({UNREADABLE_LABEL})")]
    if not has_settings(run):
        return [("Model", contract.MODEL), ("Settings", "unknown (recovered by task id)")]
    req = run.request

    def shown(value: Any, effective: Any, unit: str = "") -> str:
        return f"{effective}{unit}" if value is not None else f"{effective}{unit} (default)"

    size = req.resolution
    items = [
        ("Model", contract.MODEL),
        ("Mode", shown(req.mode, mode_label(req.effective_mode))),
        ("Duration", shown(req.duration, req.effective_duration, " s")),
        ("Aspect ratio", shown(req.aspect_ratio, req.effective_aspect)),
        ("Resolution", f"{size[0]}×{size[1]}" if size else "—"),
        ("Negative prompt", req.negative_prompt or "—"),
        ("Watermark", "—" if req.watermark is None else ("on" if req.watermark else "off")),
    ]
    for i, url in enumerate(req.image_urls):
        items.append((("First frame", "Last frame")[i] if i < 2 else f"Image {i + 1}", url))
    if req.contract == contract.LATEST or req.uses_latest_fields:
        items.insert(1, ("Contract", "latest (Sound, 3–15 s, reference images)"))
        items.append(("Sound", "on" if req.audio is True else "off"))
        for i, url in enumerate(req.references):
            items.append((f"Reference image {i + 1}", url))
    return items


def latest_under_v1(run: Run, app_contract: str) -> str | None:
    """Words for a run made with the newest fields, opened while the app sends only v1 (never dropped
    silently: a re-run here would lose its Sound and reference images)."""
    if app_contract == contract.LATEST or not has_settings(run) or run.state == UNREADABLE:
        return None
    req = run.request
    if req.contract != contract.LATEST and not req.uses_latest_fields:
        return None
    kept = [w for w, on in (("Sound", req.audio is True), ("reference images", bool(req.references)),
                            (f"{req.effective_duration} s",
                             req.effective_duration not in contract.DURATIONS)) if on]
    lost = f" Its {', '.join(kept)} cannot be sent from here." if kept else ""
    return (f"This run was {contract.LATEST_ONLY_WORDS} (TOAPIS_CONTRACT=v1).{lost} Set "
            "TOAPIS_CONTRACT=latest to re-run it as it was.")


def timing_items(run: Run, now: float, tz: tzinfo = UTC) -> list[tuple[str, str]]:
    items = [
        ("Created", format_time(run.created_at, tz)),
        ("Sent to the gateway", format_time(run.submitted_at, tz)),
        ("Finished", format_time(run.completed_at, tz)),
        ("Time to finish", format_seconds(time_to_finish(run))),
        ("Video", expiry_text(run, now)),
    ]
    if run.archived_at is not None:
        items.append(("Archived", format_time(run.archived_at, tz)))
    return items


def identity_items(run: Run) -> list[tuple[str, str]]:
    items = [("Run id", run.run_id), ("Task id", run.task_id or "—"), ("Source", run.source or "—")]
    if run.group_id:
        items.append(("Group", run.group_id))
    if run.parent_id:
        items.append(("Parent run", run.parent_id))
    return items


def error_text(run: Run) -> str | None:
    """A failed/unknown run's reason (or an archive failure), in the gateway's words plus its code."""
    if not (run.error_message or run.error_code):
        return None
    code = f" ({run.error_code})" if run.error_code else ""
    return f"{run.error_message or 'The run failed.'}{code}"


# ---------------------------------------------------------------- CSV export

CSV_MAX_MB = 20  # one export's size: the file is held in the server's memory until the session ends


def export_note(written: int, max_bytes: int = CSV_MAX_MB * 1_000_000) -> str:
    """The words that end a capped export (the export button's help says the same)."""
    return (f"Export stopped at {max_bytes / 1_000_000:g} MB after the newest {written:,} matching runs: "
            "narrow the dates or the filters and export again for the older ones.")


def export_csv(ledger: Ledger, flt: RunFilter, now: float | None = None,
               max_bytes: int = CSV_MAX_MB * 1_000_000) -> bytes:
    """The filtered runs as UTF-8 CSV bytes, newest first, capped at `max_bytes` with words in its last row.

    Why bytes, written a row at a time: Streamlit keeps the file as bytes anyway, and building the whole
    text first (then encoding it) held three copies of it at once (486 MB for 100,000 long prompts).
    Rows come from the ledger's export (formula-safe cells; no key: it holds none) in keyset pages, so
    only the file itself, at most `max_bytes`, is ever held. The window is frozen at the click (until = now)
    so runs created while the file is written stay out.
    """
    now = _time.time() if now is None else now
    if flt.until is None or flt.until > now:
        flt = dataclasses.replace(flt, until=now)
    out = io.BytesIO()
    line = io.StringIO()
    writer = csv.writer(line)

    def encoded(row: Sequence[Any]) -> bytes:
        line.seek(0)
        line.truncate()
        writer.writerow(row)
        return line.getvalue().encode("utf-8")

    written = -1  # the first row is the header
    for row in ledger.csv_rows(flt):
        data = encoded(row)
        if written >= 0 and out.tell() + len(data) > max_bytes:
            out.write(encoded([export_note(written, max_bytes)]))
            break
        out.write(data)
        written += 1
    return out.getvalue()


def csv_file_name(now: float) -> str:
    return f"kling-runs-{datetime.fromtimestamp(now, tz=UTC):%Y%m%d-%H%M%S}.csv"


# ---------------------------------------------------------------- spend and stats

def utc_offset_seconds(tz: tzinfo, now: float) -> float:
    """The viewer's offset from UTC now, so "per day" means the viewer's days."""
    offset = datetime.fromtimestamp(now, tz=tz).utcoffset()
    return 0.0 if offset is None else offset.total_seconds()


def spend_frame(by_day: Sequence[tuple[str, float]]) -> pd.DataFrame:
    """ledger.spend_by_day() as a chartable frame (day, estimated USD).

    Days stay ISO strings: a categorical axis gives every day a full-width bar (a time axis draws hairlines),
    and ISO order is date order.
    """
    import pandas as pd

    return pd.DataFrame({
        "day": [str(d) for d, _ in by_day],
        "estimated USD": [round(float(v), 4) for _, v in by_day],
    })


def stats_summary(stats: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs for st.metric from ledger.stats()."""
    done, failed = int(stats.get("completed") or 0), int(stats.get("failed") or 0)
    rate = stats.get("success_rate")
    return [
        ("Runs", f"{int(stats.get('total') or 0):,}"),
        ("Success rate", "—" if rate is None else f"{float(rate) * 100:.0f}%"),
        ("Completed / failed", f"{done:,} / {failed:,}"),
    ]


def median_rows(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Median time to finish per mode and duration, one row each, std before pro, short before long."""
    rows = []
    for item in stats.get("median_finish") or ():
        rows.append({
            "mode": item.get("mode") or "—",
            "duration": f"{item.get('duration')} s" if item.get("duration") else "—",
            "runs": int(item.get("runs") or 0),
            "median time to finish": format_seconds(item.get("median_s")),
        })
    return rows


# ---------------------------------------------------------------- share view

@dataclass(frozen=True)
class ShareTarget:
    """What a /run link asks for: one run, a group, or nothing usable (with the message to show)."""

    kind: str            # "run" | "group" | "invalid"
    ident: str | None = None
    message: str | None = None


def parse_share_query(query_params: Mapping[str, Any] | query.QueryReader) -> ShareTarget:
    """Read ?id=… or ?group=… (lib.query; the first value of a repeated key); a malformed id gets the same
    plain message as an unknown one."""
    r = query.reader(query_params)
    for key, kind in (("id", "run"), ("group", "group")):
        if r.has(key):
            ident = r.ident(key, quiet=True)
            if ident is None:
                return ShareTarget("invalid", message=NOT_FOUND_MESSAGE)
            return ShareTarget(kind, ident)
    return ShareTarget("invalid", message=NO_TARGET_MESSAGE)


def grid_query(runs: Sequence[Run]) -> dict[str, str]:
    """Query params describing a comparison group's settings, for pages/compare.py to restore the grid.

    The one path from a group to its settings is compare.spec_from_runs (the reload of a group uses it
    too); this only writes that spec as the query compare.spec_from_query reads back: prompt, prompt2 …
    prompt4, modes ("std,pro"), durations ("5,10"), aspect_ratio (or aspects="16:9,1:1"), and when the
    grid used them negative_prompt, first_frame, last_frame and watermark. Runs without settings are
    skipped.
    """
    from lib import compare  # compare knows grids; history only lists them

    spec = compare.spec_from_runs([r for r in runs if has_settings(r)])
    return compare.spec_to_query(spec) if spec is not None else {}


def grid_cell_label(run: Run) -> str:
    """'std 720p · 5 s · 16:9', prefixed by the run's label when the grid named it (e.g. a prompt variant)."""
    req = run.request
    size = req.resolution
    head = f"{req.effective_mode} {min(size)}p" if size else req.effective_mode
    text = f"{head} · {req.effective_duration} s · {req.effective_aspect}"
    if req.audio is True:
        text += " · Sound"
    if run.label and run.label not in (req.effective_mode, head):
        return f"{run.label} · {text}"
    return text


def sort_grid(runs: Sequence[Run]) -> list[Run]:
    """Grid order: prompt variant (first seen), then std before pro, then duration, then creation time."""
    order: dict[str, int] = {}
    for r in sorted(runs, key=lambda r: (r.created_at, r.run_id)):
        order.setdefault(r.request.prompt, len(order))

    def key(r: Run) -> tuple[int, int, int, float, str]:
        req = r.request
        rank = contract.MODES.index(req.effective_mode) if req.effective_mode in contract.MODES else 9
        return (order.get(req.prompt, 99), rank, req.effective_duration, r.created_at, r.run_id)

    return sorted(runs, key=key)


def group_cost(runs: Sequence[Run]) -> tuple[float, float]:
    """(estimated total, estimated billed): the second leaves out failed and never-sent cells."""
    total = sum(float(r.est_cost or 0.0) for r in runs)
    billed = sum(float(r.est_cost or 0.0) for r in runs if r.billed)
    return total, billed
