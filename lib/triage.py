"""Triage rules: a run's rating, favourite, tags and note, the "Which is better?" verdict, and its stats.

Pure and local (no streamlit, no database): every value a person types or a callback hands over is
judged here, in words, before the ledger stores it (lib/ledger/triage.py stores, and calls these checks
again, so a direct call with a bad value is refused too). Who may edit a run's triage is the owners rule
(lib/owners.py): the run's owner, or anyone for a team run; a verdict is each person's own.

Why stars (st.feedback "stars", 1–5) and not thumbs: History filters by a minimum rating and sorts by it,
which needs more than two levels; "keep this one" already has its own switch (favourite).
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import money, owners

if TYPE_CHECKING:
    from lib.ledger import Ledger, Run

RATING_MIN, RATING_MAX = 1, 5
MAX_TAG = 24
MAX_TAGS = 8
MAX_TAGS_TEXT = 400    # the raw text of the tag box: judged by length before it is split
MAX_NOTE = 1000
SORTS = ("newest", "rating")
SORT_LABELS = {"newest": "Newest first", "rating": "Best rated first"}
TEAM_JUDGE = ""        # the judge of a verdict made without sign-in: the team, one verdict per pair


class TriageError(ValueError):
    """A triage value that cannot be stored as given; str() is the words for the user."""


@dataclass(frozen=True)
class Triage:
    """A run's marks. A run never marked has the defaults (no rating, not a favourite, no tags, no note)."""

    run_id: str
    rating: int | None = None
    favourite: bool = False
    tags: tuple[str, ...] = ()
    note: str = ""
    updated_at: float | None = None
    updated_by: str | None = None

    @property
    def empty(self) -> bool:
        return self.rating is None and not self.favourite and not self.tags and not self.note


@dataclass(frozen=True)
class Verdict:
    """One person's answer to "Which is better?" for a pair of runs (a new choice replaces it)."""

    run_a: str
    run_b: str
    winner: str
    judge: str
    judge_name: str | None
    blind: bool
    created_at: float
    updated_at: float


# ---------------------------------------------------------------- values

def _bad_chars(text: str, *, allow_newlines: bool) -> bool:
    allowed = {"\n", "\t"} if allow_newlines else set()
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in allowed for ch in text)


def check_rating(value: Any) -> int | None:
    """1–5 stars, or None (no rating); anything else is refused in words."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TriageError(f"A rating must be a whole number of stars from {RATING_MIN} to {RATING_MAX} "
                          f"(got {type(value).__name__}).")
    if not RATING_MIN <= value <= RATING_MAX:
        raise TriageError(f"A rating is {RATING_MIN} to {RATING_MAX} stars (got {value}); pick a star, "
                          "or clear the rating.")
    return value


def check_favourite(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TriageError(f"Favourite is on or off (got {type(value).__name__}).")
    return value


def tag_key(tag: str) -> str:
    """A tag as stored and compared: NFC, casefolded, inner spaces made one, no leading '#'."""
    text = " ".join(unicodedata.normalize("NFC", tag).split()).casefold()
    return text.lstrip("#").strip()


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tags from a comma-separated text or a list: normalised (tag_key), duplicates merged, order kept.
    Raises TriageError with every problem in words; nothing is stored then."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        if len(value) > MAX_TAGS_TEXT:
            raise TriageError(f"The tags are {len(value):,} characters; at most {MAX_TAGS_TEXT} in all — "
                              f"use up to {MAX_TAGS} short tags separated by commas.")
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        if len(value) > MAX_TAGS * 4:
            raise TriageError(f"{len(value):,} tags; a run takes at most {MAX_TAGS}.")
        items = list(value)
    else:
        raise TriageError(f"Tags must be text separated by commas (got {type(value).__name__}).")
    tags: dict[str, None] = {}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"A tag must be text (got {type(item).__name__}).")
            continue
        if _bad_chars(item, allow_newlines=False):
            problems.append("A tag contains control characters or line breaks — use letters, digits and "
                            "spaces.")
            continue
        tag = tag_key(item)
        if not tag:
            continue
        if "|" in tag:
            problems.append(f"The tag “{tag[:MAX_TAG]}” contains “|”, which tags cannot hold — remove it.")
        elif len(tag) > MAX_TAG:
            problems.append(f"The tag “{tag[:MAX_TAG]}…” is {len(tag):,} characters; at most {MAX_TAG} — "
                            "shorten it.")
        else:
            tags.setdefault(tag, None)
    if len(tags) > MAX_TAGS:
        problems.append(f"{len(tags)} tags; a run takes at most {MAX_TAGS} — remove {len(tags) - MAX_TAGS}.")
    if problems:
        raise TriageError(" ".join(dict.fromkeys(problems)))
    return tuple(tags)


def check_note(value: Any) -> str:
    """The note as stored (outer blank lines trimmed); refused in words when too long or not plain text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TriageError(f"A note must be text (got {type(value).__name__}).")
    text = unicodedata.normalize("NFC", value).strip()
    if _bad_chars(text, allow_newlines=True):
        raise TriageError("The note contains control characters (for example a NUL) — remove them; "
                          "letters, digits, punctuation and line breaks are fine.")
    if len(text) > MAX_NOTE:
        raise TriageError(f"The note is {len(text):,} characters; at most {MAX_NOTE:,} — shorten it by "
                          f"{len(text) - MAX_NOTE:,}.")
    return text


def tag_keys_column(tags: Sequence[str]) -> str:
    """'|a|b|': what History's tag filter matches in SQL (a tag never holds '|')."""
    return "|" + "|".join(tags) + "|" if tags else ""


# ---------------------------------------------------------------- who may mark and judge

def edit_refusal(sign_in: bool, run: Run, actor: owners.Actor) -> str | None:
    """Why `actor` may not change `run`'s marks, in words (the owners rule), or None."""
    return owners.refusal(sign_in, run, actor, "rate or tag")


def edit(ledger: Ledger, sign_in: bool, run: Run, actor: owners.Actor, **changes: Any) -> Triage:
    """Change a run's marks as `actor`: refused in words (owners.NotYours) for another person's run,
    whatever the page drew; TriageError for a bad value. Nothing is written then."""
    owners.check(sign_in, run, actor, "rate or tag")
    return ledger.set_triage(run.run_id, by=actor.owner, **changes)


def judge(ledger: Ledger, sign_in: bool, actor: owners.Actor, run_a: str, run_b: str, winner: str, *,
          blind: bool) -> tuple[Verdict, bool]:
    """Record `actor`'s verdict (each person has their own; without sign-in the team has one)."""
    if sign_in and not (actor.signed_in and actor.owner):
        raise owners.NotYours(owners.SIGN_IN_FIRST)
    return ledger.record_verdict(run_a, run_b, winner, judge=actor.owner or TEAM_JUDGE,
                                 judge_name=actor.name, blind=blind)


# ---------------------------------------------------------------- History filter values

def min_rating_of(value: Any) -> int | None:
    """A History widget's "rating at least" value; anything unknown means no filter."""
    return value if isinstance(value, int) and not isinstance(value, bool) and \
        RATING_MIN <= value <= RATING_MAX else None


def tag_filter_of(value: Any) -> str | None:
    if not isinstance(value, str) or _bad_chars(value, allow_newlines=False):
        return None
    tag = tag_key(value)
    return tag if tag and "|" not in tag and len(tag) <= MAX_TAG else None


def sort_of(value: Any) -> str:
    return value if value in SORTS else "newest"


def stars(rating: int | None) -> str:
    """'★★★★☆' for 4, '' for none (the table's column)."""
    if rating is None:
        return ""
    return "★" * rating + "☆" * (RATING_MAX - rating)


def summary(marks: Triage) -> str:
    """One line of what a run is marked with, for a read-only view: '★★★★☆ · favourite · #snow #keep'."""
    parts = []
    if marks.rating is not None:
        parts.append(stars(marks.rating))
    if marks.favourite:
        parts.append("favourite")
    if marks.tags:
        parts.append(" ".join(f"#{t}" for t in marks.tags))
    return " · ".join(parts)


# ---------------------------------------------------------------- verdicts

def pair_ids(run_a: str, run_b: str) -> tuple[str, str]:
    """A pair in one order whatever order it was asked in: (a, b) and (b, a) are one verdict."""
    if not run_a or not run_b or run_a == run_b:
        raise TriageError("A verdict compares two different runs.")
    return (run_a, run_b) if run_a < run_b else (run_b, run_a)


def blind_order(run_a: str, run_b: str) -> tuple[str, str]:
    """The order a blind pair is shown in: shuffled per pair, but the same on every draw and reload (a
    stable seed: the pair's own ids), so A and B never swap while someone is judging."""
    first, second = pair_ids(run_a, run_b)
    flip = hashlib.sha256(f"{first}|{second}".encode()).digest()[0] & 1
    return (second, first) if flip else (first, second)


@dataclass(frozen=True)
class VerdictRow:
    """One std-vs-pro verdict with what each side cost, for the stats."""

    prompt: str
    pro_won: bool
    blind: bool
    pro_cost: float
    std_cost: float


@dataclass
class ProVsStd:
    """How often pro beat std, and what the pro takes cost over their std pairs."""

    verdicts: int = 0
    pro_wins: int = 0
    blind: int = 0
    blind_pro_wins: int = 0
    extra_cost: float = 0.0     # the price difference paid for the pro takes of these pairs
    pro_win_extra: float = 0.0  # the part of it paid for pro takes that won

    @property
    def std_wins(self) -> int:
        return self.verdicts - self.pro_wins

    @property
    def rate(self) -> float | None:
        return self.pro_wins / self.verdicts if self.verdicts else None

    def add(self, row: VerdictRow) -> None:
        self.verdicts += 1
        self.pro_wins += row.pro_won
        self.blind += row.blind
        self.blind_pro_wins += row.blind and row.pro_won
        diff = row.pro_cost - row.std_cost
        self.extra_cost += diff
        if row.pro_won:
            self.pro_win_extra += diff


@dataclass
class VerdictStats:
    overall: ProVsStd = field(default_factory=ProVsStd)
    by_prompt: dict[str, ProVsStd] = field(default_factory=dict)


def verdict_stats(rows: Iterable[VerdictRow]) -> VerdictStats:
    stats = VerdictStats()
    for row in rows:
        stats.overall.add(row)
        stats.by_prompt.setdefault(row.prompt, ProVsStd()).add(row)
    return stats


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n:,} times"


def stats_words(s: ProVsStd) -> str:
    """The sentence History shows: how often pro won and what it cost, in numbers a person can act on."""
    if not s.verdicts:
        return ("No std-vs-pro verdicts yet: on Compare, press Which is better? under a pair of finished "
                "std and pro cells.")
    rate = f"{(s.rate or 0) * 100:.0f}%"
    verdicts = "1 verdict" if s.verdicts == 1 else f"{s.verdicts:,} verdicts"
    text = f"Pro beat std {_times(s.pro_wins)} in {verdicts} ({rate})"
    if s.blind:
        text += f"; blind, {s.blind_pro_wins} of {s.blind}"
    text += (f". The pro takes cost ≈ {money.usd(s.extra_cost)} more than their std pairs "
             f"(≈ {money.usd(s.extra_cost / s.verdicts)} a pair)")
    if s.pro_wins:
        text += f"; ≈ {money.usd(s.extra_cost / s.pro_wins)} extra for each pro win."
    else:
        text += "; pro never won, so that was paid for nothing."
    return text


def stats_table(stats: VerdictStats, shorten: int = 80) -> list[dict[str, Any]]:
    """One row per prompt, most judged first: verdicts, pro wins, rate, blind, extra paid."""
    rows = []
    for prompt, s in sorted(stats.by_prompt.items(), key=lambda kv: (-kv[1].verdicts, kv[0])):
        text = " ".join(prompt.split())
        rows.append({
            "prompt": text if len(text) <= shorten else text[:shorten - 1] + "…",
            "verdicts": s.verdicts,
            "pro won": s.pro_wins,
            "std won": s.std_wins,
            "pro win rate": f"{(s.rate or 0) * 100:.0f}%",
            "blind (pro won)": f"{s.blind_pro_wins} of {s.blind}" if s.blind else "—",
            "extra paid for pro": money.cents(s.extra_cost),
        })
    return rows


def verdict_rows(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any], str, bool]]) -> list[VerdictRow]:
    """(side a, side b, winner id, blind) -> the std-vs-pro rows; each side is {run_id, mode, est_cost,
    prompt}. Pairs of one mode (two std takes) are no answer to "was pro worth it" and are left out."""
    out = []
    for a, b, winner, blind in pairs:
        modes = {a.get("mode"), b.get("mode")}
        if modes != {"std", "pro"}:
            continue
        pro, std = (a, b) if a.get("mode") == "pro" else (b, a)
        out.append(VerdictRow(prompt=str(pro.get("prompt") or std.get("prompt") or ""),
                              pro_won=winner == pro.get("run_id"), blind=bool(blind),
                              pro_cost=float(pro.get("est_cost") or 0.0),
                              std_cost=float(std.get("est_cost") or 0.0)))
    return out
