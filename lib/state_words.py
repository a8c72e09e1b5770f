"""One set of words for a run's state, wherever a person reads it.

Why one mapping: cards said Done / Generating / Waiting to send while History said completed / in
progress / draft, so a person could not tell they meant the same thing. Cards, the History table, its
filter and the share view all read these words; the ledger, URLs and the CSV export keep the raw states
(machines read those).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lib.ledger import (
    COMPLETED,
    DRAFT,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    STATES,
    SUBMITTING,
    TIMED_OUT,
    UNKNOWN,
    UNREADABLE,
)

# the colours st.badge accepts
BadgeColor = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "grey", "primary"]


@dataclass(frozen=True)
class StateWords:
    """What a person reads for one state, and how its badge looks."""

    words: str
    color: BadgeColor
    icon: str


WORDS: dict[str, StateWords] = {
    DRAFT: StateWords("Waiting to send", "gray", ":material/schedule:"),
    SUBMITTING: StateWords("Sending", "blue", ":material/send:"),
    QUEUED: StateWords("Queued", "blue", ":material/hourglass_top:"),
    IN_PROGRESS: StateWords("Generating", "violet", ":material/progress_activity:"),
    COMPLETED: StateWords("Done", "green", ":material/check_circle:"),
    FAILED: StateWords("Failed", "red", ":material/error:"),
    UNKNOWN: StateWords("Outcome unknown", "orange", ":material/help:"),
    TIMED_OUT: StateWords("Timed out", "orange", ":material/timer_off:"),
    UNREADABLE: StateWords("Unreadable run", "gray", ":material/broken_image:"),
}

# the states a person can filter by (the ledger's), in the ledger's order, with their words
FILTER_LABELS: dict[str, str] = {state: WORDS[state].words for state in STATES}


def words(state: str | None) -> str:
    """'Done', 'Generating', …; a state this code does not know is shown as it is stored."""
    known = WORDS.get(state or "")
    return known.words if known else (state or "—")


def badge(state: str | None) -> StateWords:
    """Words, colour and icon for st.badge; an unknown state gets gray and no special icon."""
    return WORDS.get(state or "", StateWords(words(state), "gray", ":material/help:"))
