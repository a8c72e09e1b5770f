"""One generation task (and the balance) as the gateway reports it, read from any documented shape.

Why apart from the client: the ledger and the tests build `Task`s from stored or hand-written bodies
without any HTTP; gateway answers are untrusted, so every link is vetted here, when it is read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lib.gateway.errors import ProtocolError
from lib.safe_fetch import url_problem

log = logging.getLogger(__name__)

STATUSES = ("queued", "in_progress", "completed", "failed")
TERMINAL_STATUSES = frozenset({"completed", "failed"})
# Legacy spellings seen in older docs (docs/api-contract.md §4.2: `submitted`); read as their modern status.
_STATUS_ALIASES = {"submitted": "queued"}


def _as_time(value: Any) -> float | None:
    """Unix seconds from an int/float, a numeric string, or an ISO 8601 string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _as_progress(value: Any) -> int | None:
    """0–100 from an int, a float, or a string like "65" / "65%"; None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value:
        return int(max(0, min(100, round(value))))
    return None


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class Task:
    """One generation task as the gateway reports it, whatever documented shape it came in."""

    id: str
    status: str  # one of STATUSES
    progress: int  # 0–100
    created_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None  # when the gateway's video URL stops working
    video_url: str | None = None
    thumbnail_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Why the gateway's video link was refused ("is a file path, …"); the link itself is dropped, so it
    # never reaches the ledger, a player or a download.
    video_url_problem: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def no_video_reason(self) -> str | None:
        """For a completed task without a usable video link: why, in words for the user; else None."""
        if self.status != "completed" or self.video_url is not None:
            return None
        if self.video_url_problem:
            return (f"The gateway said the video is ready, but its video link {self.video_url_problem}, "
                    "so the playground refused it and never opened it. There is no video to show; the "
                    "run is kept with its settings. Check the gateway before re-running it.")
        return "The gateway said the run completed but gave no video link, so there is nothing to archive."

    @classmethod
    def from_payload(cls, data: Any) -> Task:
        """Read a submit or status body; raises ProtocolError on a shape it cannot read."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object for a task, got {type(data).__name__}")
        task_id = data.get("id", data.get("task_id"))
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id.strip():
            raise ProtocolError("task response has no 'id'")
        raw_status = data.get("status")
        if not isinstance(raw_status, str):
            raise ProtocolError(f"task {task_id} has no readable 'status' (got {raw_status!r})")
        status = raw_status.strip().lower()
        status = _STATUS_ALIASES.get(status, status)
        if status not in STATUSES:
            raise ProtocolError(f"task {task_id} has an unknown status {raw_status!r}")

        progress = _as_progress(data.get("progress"))
        if progress is None:
            # Missing progress reads as 0 (the docs' own sample code), except that a finished video is 100 %.
            progress = 100 if status == "completed" else 0

        result = data.get("result")
        items = result.get("data") if isinstance(result, dict) else None
        first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        result_dict = result if isinstance(result, dict) else {}
        video_url = _first_str(
            first.get("url"), result_dict.get("url"), data.get("url"), data.get("video_url"),
        )
        thumbnail_url = _first_str(
            first.get("thumbnail_url"), first.get("thumbnail"), result_dict.get("thumbnail"),
            data.get("thumbnail_url"), data.get("thumbnail"),
        )
        # Gateway answers are untrusted: only absolute http(s) links with a plain host go any further
        # (a path like /proc/self/environ handed to st.video would be read from this server's disk).
        video_problem = url_problem(video_url) if video_url is not None else None
        if video_problem:
            log.warning("task %s: refused its video link, which %s", task_id, video_problem)
            video_url = None
        if thumbnail_url is not None and (thumb_problem := url_problem(thumbnail_url)):
            log.warning("task %s: refused its thumbnail link, which %s", task_id, thumb_problem)
            thumbnail_url = None

        error = data.get("error")
        error_code: str | None = None
        error_message: str | None = None
        if isinstance(error, dict):
            code = error.get("code")
            error_code = str(code) if isinstance(code, (int, str)) and str(code) else None
            error_message = _first_str(error.get("message"))
        elif isinstance(error, str):
            error_message = _first_str(error)
        error_message = error_message or _first_str(data.get("fail_reason"))

        return cls(
            id=task_id.strip(),
            status=status,
            progress=progress,
            created_at=_as_time(data.get("created_at")),
            completed_at=_as_time(data.get("completed_at")),
            expires_at=_as_time(data.get("expires_at")),
            video_url=video_url,
            thumbnail_url=thumbnail_url,
            error_code=error_code,
            error_message=error_message,
            video_url_problem=video_problem,
            raw=data,
        )


@dataclass(frozen=True)
class Balance:
    """The token's balance in USD (the gateway also reports credits at 200 per USD)."""

    remain_usd: float | None
    used_usd: float | None
    raw: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def from_payload(cls, data: Any) -> Balance | None:
        """None for the documented failure (HTTP 200, success: false); ProtocolError for a non-object."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object for the balance, got {type(data).__name__}")
        if data.get("success") is False:
            return None
        per_usd = data.get("credits_per_usd") or 200

        def usd(balance_key: str, credits_key: str) -> float | None:
            value = data.get(balance_key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            credits = data.get(credits_key)
            if isinstance(credits, (int, float)) and not isinstance(credits, bool) and per_usd:
                return float(credits) / float(per_usd)
            return None

        return cls(usd("remain_balance", "remain_credits"), usd("used_balance", "used_credits"), data)
