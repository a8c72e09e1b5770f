"""What a run is, in plain values: its states, the codes on it, the errors, the Run record and the filters.

Its own module because every page, the worker and the history logic need these words and types without
any SQL: nothing here imports SQLAlchemy or opens a database.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lib.contract import VideoRequest

DRAFT = "draft"
SUBMITTING = "submitting"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
UNKNOWN = "unknown"
# Sent, but not finished by the deadline after submit: no longer in flight (nothing is re-sent, pages stop
# ticking for it), still billed, and still checked slowly so a late finish is archived (-> completed).
TIMED_OUT = "timed_out"
STATES = (DRAFT, SUBMITTING, QUEUED, IN_PROGRESS, COMPLETED, FAILED, UNKNOWN, TIMED_OUT)
ACTIVE = frozenset({DRAFT, SUBMITTING, QUEUED, IN_PROGRESS})
TERMINAL = frozenset({COMPLETED, FAILED})
SOURCES = ("compose", "compare", "recovered", "rerun", "promote", "extend")
# Not a state a run can be in: what a row this code cannot read (invalid JSON in params, a state word it
# does not know, a NULL or a text where a number belongs) is shown as, so that one bad row never breaks
# a list. Such a run has no settings and is never handed to the worker.
UNREADABLE = "unreadable"
UNREADABLE_LABEL = "unreadable run"

# Gateway task status -> ledger state ("submitted" is the legacy spelling of queued).
_STATUS_TO_STATE = {
    "queued": QUEUED,
    "submitted": QUEUED,
    "in_progress": IN_PROGRESS,
    "completed": COMPLETED,
    "failed": FAILED,
}

TIMED_OUT_CODE = "timed_out"
TASK_GONE_CODE = "task_gone"  # an unknown run whose task the gateway answered 404 for, several times in a row
STALE_SUBMIT_CODE = "submit_interrupted"
STALE_SUBMIT_MESSAGE = (
    "The app stopped while sending this run; it may or may not have reached the gateway — "
    "recover it by task id or re-submit."
)
# How long a "submitting" claim stays valid: the submit POST has a 35 s worst case (5 s connect + 30 s
# read) plus rate-limiter waits, so 120 s never cuts off a live submit but still notices a dead one.
SUBMIT_LEASE = 120.0

# States a worker may have work for (submit, poll, archive, a timed-out run's slow check); others never
# get a next_poll_at.
_WORKABLE = (DRAFT, QUEUED, IN_PROGRESS, COMPLETED, TIMED_OUT)


class LedgerError(Exception):
    """A ledger operation that cannot be done as asked (words for the user, no SQL)."""


class LedgerTooNew(LedgerError):
    """The ledger's schema is at a revision this app does not know: a newer version of the app wrote it.

    Raised by Ledger() before anything is written; str() says what is wrong and what to do (a start-up
    error page shows it as is). `revision` is the ledger's, `head` the newest this app knows."""

    def __init__(self, where: str, revision: str, head: str) -> None:
        self.where, self.revision, self.head = where, revision, head
        super().__init__(
            f"The ledger at {where} was written by a newer version of this app: its schema is at revision "
            f"{revision!r}, and this version only knows revisions up to {head!r}. Nothing was changed. "
            "Run the newer version of the app with this ledger (for example after a git pull), or point "
            "PLAYGROUND_DB_URL at another ledger."
        )


@dataclass(frozen=True)
class Run:
    """One row of the runs table, as plain values (the worker and the pages never see SQL rows)."""

    run_id: str
    created_at: float
    updated_at: float
    params: dict
    est_cost: float
    task_id: str | None
    state: str
    progress: int
    submitted_at: float | None
    completed_at: float | None  # when the ledger saw it finish
    gateway_completed_at: float | None
    video_url: str | None
    thumbnail_url: str | None
    expires_at: float | None
    video_path: str | None
    poster_path: str | None
    archived_at: float | None
    error_code: str | None
    error_message: str | None
    group_id: str | None
    parent_id: str | None
    label: str | None
    source: str
    next_poll_at: float | None
    polls: int
    mode: str | None = None  # effective mode (default applied); None for a recovered run of unknown params
    duration: int | None = None
    aspect_ratio: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    not_found: int = 0  # the gateway's 404 answers to status checks since its last readable answer
    owner: str | None = None       # the signed-in user's id (OIDC sub) who made it; None: the team's
    owner_name: str | None = None  # their display name when they made it (shown on shared views)

    @property
    def request(self) -> VideoRequest:
        from lib.contract import VideoRequest  # lazy: the ledger must not need the contract to load

        return VideoRequest.from_dict(self.params)

    @property
    def billed(self) -> bool:
        """False when the gateway cannot have charged: failed runs and runs never sent.

        "unknown" counts as billed: it may have reached the gateway, and a budget must assume it did.
        """
        return self.state not in (DRAFT, FAILED)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def unreadable(self) -> bool:
        """The ledger row could not be read (see UNREADABLE); error_message says what was wrong."""
        return self.state == UNREADABLE

    @property
    def archive_failed(self) -> bool:
        """A completed run whose video could not be archived (the reason is in error_code/message)."""
        return self.state == COMPLETED and self.video_path is None and self.error_code is not None

    @property
    def seconds_to_finish(self) -> float | None:
        if self.state != COMPLETED or self.completed_at is None or self.submitted_at is None:
            return None
        return max(0.0, self.completed_at - self.submitted_at)


@dataclass(frozen=True)
class NewRun:
    """One draft run for Ledger.create_runs (the arguments of create_run, as a value)."""

    run_id: str
    request: VideoRequest | Mapping[str, Any]
    est_cost: float
    group_id: str | None = None
    parent_id: str | None = None
    label: str | None = None
    source: str = "compose"
    owner: str | None = None
    owner_name: str | None = None


@dataclass(frozen=True)
class Creation:
    """What Ledger.create_runs did: every run (in the order given) or a refusal with the numbers."""

    runs: tuple[Run, ...] = ()
    created: tuple[bool, ...] = ()   # per run: False = the id existed already (a repeated press)
    refused: bool = False            # over budget: nothing was written
    spent: float = 0.0               # committed spend seen under the lock, before this write (with a budget)
    cost: float = 0.0                # est_cost of the runs that were new
    budget: float | None = None
    user_spent: float = 0.0          # the owner's own committed spend under the same lock (with user_budget)
    user_budget: float | None = None
    refused_by: str | None = None    # "team" or "user": which cap refused

    @property
    def n_created(self) -> int:
        return sum(self.created)


@dataclass(frozen=True)
class RunFilter:
    """History filters; every one is applied in SQL so paging stays cheap at any size."""

    text: str | None = None  # substring of prompt/negative prompt (case-insensitive), or an exact task/run id
    states: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()
    since: float | None = None  # created_at >= since
    until: float | None = None  # created_at < until
    group_id: str | None = None
    owner: str | None = None  # only this owner's runs (sign-in's "my runs"); None: everyone's
    # triage (lib/ledger/triage.py): at least this many stars, favourites only, one tag; History's order
    min_rating: int | None = None
    favourite: bool = False
    tag: str | None = None
    sort: str = "newest"  # or "rating": best rated first (unrated last), then newest
