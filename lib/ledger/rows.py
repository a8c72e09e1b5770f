"""The one translation between a row of the runs table and a Run, both ways.

Its own module because reading a row is where untrusted data meets the code: a row this version cannot
read (bad JSON, an unknown state, text where a number belongs, a path out of the archive) becomes an
UNREADABLE run that says why, never an exception, so one bad row never breaks a list, a page or the worker.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lib.ledger.model import _WORKABLE, DRAFT, STATES, UNREADABLE, Run
from lib.ledger.schema import runs_table

if TYPE_CHECKING:
    from lib.contract import VideoRequest

log = logging.getLogger(__name__)

# a row as SQLAlchemy returns it (its keys may also be Columns) or as a test writes it by hand
RowValues = sa.RowMapping | Mapping[str, Any]

_RUN_FIELDS = tuple(f.name for f in fields(Run))


def _search_text(params: Mapping[str, Any]) -> str:
    parts = [str(params.get("prompt") or ""), str(params.get("negative_prompt") or "")]
    return "\n".join(p for p in parts if p).lower()


def _request_dict(request: Any) -> dict[str, Any]:
    if request is None:
        return {}
    if isinstance(request, Mapping):
        return dict(request)
    return dict(request.to_dict())


def _effective(request: Any, params: Mapping[str, Any]) -> tuple[str | None, int | None, str | None]:
    """(mode, duration, aspect) with the gateway defaults applied, stored as columns for filtering."""
    if request is None or not params:
        return None, None, None
    if isinstance(request, Mapping):
        from lib.contract import VideoRequest

        request = VideoRequest.from_dict(request)
    return request.effective_mode, request.effective_duration, request.effective_aspect


def run_row(
    run_id: str,
    request: VideoRequest | Mapping[str, Any] | None,
    est_cost: float,
    *,
    now: float,
    state: str = DRAFT,
    group_id: str | None = None,
    parent_id: str | None = None,
    label: str | None = None,
    source: str = "compose",
    task_id: str | None = None,
    owner: str | None = None,
    owner_name: str | None = None,
) -> dict[str, Any]:
    """The column values of a new run; public so bulk loaders (tests, benchmarks) write the same rows."""
    params = _request_dict(request)
    mode, duration, aspect = _effective(request, params)
    row: dict[str, Any] = dict.fromkeys(runs_table.c.keys())  # every column: executemany needs one shape
    row.update({
        "run_id": run_id,
        "created_at": now,
        "updated_at": now,
        "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
        "est_cost": float(est_cost),
        "mode": mode,
        "duration": duration,
        "aspect_ratio": aspect,
        "search_text": _search_text(params),
        "task_id": task_id,
        "state": state,
        "progress": 0,
        "group_id": group_id,
        "parent_id": parent_id,
        "label": label,
        "source": source,
        "next_poll_at": now if state in _WORKABLE else None,
        "polls": 0,
        "not_found": 0,
        "owner": owner,
        "owner_name": owner_name,
    })
    return row


_REQUIRED_NUMBERS = ("created_at", "updated_at", "est_cost")
_OPTIONAL_NUMBERS = ("submitted_at", "completed_at", "gateway_completed_at", "expires_at", "archived_at",
                     "next_poll_at", "lease_until")
_REQUIRED_COUNTS = ("progress", "polls", "not_found")
_REQUIRED_TEXT = ("run_id", "state", "source")
_PARAM_TEXT = ("prompt", "negative_prompt", "mode", "aspect_ratio")


_WARNED: set[str] = set()


class _Unreadable(Exception):
    """Why a row cannot become a Run (words for the card and the log)."""


def _number(name: str, value: Any, *, required: bool, whole: bool = False) -> Any:
    if value is None:
        if required:
            raise _Unreadable(f"{name} is empty")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unreadable(f"{name} is not a number")
    if isinstance(value, float) and not (abs(value) < float("inf")):
        raise _Unreadable(f"{name} is not a finite number")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise _Unreadable(f"{name} is not a whole number")
        return int(value)
    return float(value)


def _params(raw: Any) -> dict[str, Any]:
    """The request JSON, checked for the shapes VideoRequest.from_dict and the pages rely on."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise _Unreadable("its settings are not text")
    try:
        params = json.loads(raw)
    except ValueError:
        raise _Unreadable("its settings are not valid JSON") from None
    if not isinstance(params, dict):
        raise _Unreadable("its settings are not a JSON object")
    for key in _PARAM_TEXT:
        if params.get(key) is not None and not isinstance(params[key], str):
            raise _Unreadable(f"its {key.replace('_', ' ')} is not text")
    duration = params.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | str)):
        raise _Unreadable("its duration is neither a number nor text")
    urls = params.get("image_urls")
    if urls is not None and not isinstance(urls, str) and (
            not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise _Unreadable("its image URLs are not a list of text")
    if params.get("watermark") is not None and not isinstance(params["watermark"], bool):
        raise _Unreadable("its watermark setting is not true or false")
    return params


def _read_row(row: RowValues) -> dict[str, Any]:
    values: dict[str, Any] = {name: row.get(name) for name in _RUN_FIELDS}
    for name in _REQUIRED_TEXT:
        if not isinstance(values[name], str) or not values[name]:
            raise _Unreadable(f"its {name.replace('_', ' ')} is empty or not text")
    if values["state"] not in STATES:
        raise _Unreadable(f"its state {values['state'][:24]!r} is not one this version of the app knows")
    for name in _REQUIRED_NUMBERS + _OPTIONAL_NUMBERS:
        values[name] = _number(name, values[name], required=name in _REQUIRED_NUMBERS)
    for name in _REQUIRED_COUNTS:
        values[name] = _number(name, values[name], required=True, whole=True)
    values["duration"] = _number("duration", values["duration"], required=False, whole=True)
    numbers = {*_REQUIRED_NUMBERS, *_OPTIONAL_NUMBERS, *_REQUIRED_COUNTS, "duration", "params"}
    for name, value in values.items():
        if name not in numbers and value is not None and not isinstance(value, str):
            raise _Unreadable(f"its {name.replace('_', ' ')} is not text")
    for name in ("video_path", "poster_path"):  # stored relative to the archive; never a way out of it
        value = values[name]
        if value is not None and ("\x00" in value or ".." in value.replace("\\", "/").split("/")):
            raise _Unreadable(f"its {name.replace('_', ' ')} points outside the archive")
    values["params"] = _params(values["params"])
    return values


def _to_run(row: RowValues) -> Run:
    """A Run, or for a row this code cannot read an UNREADABLE run that says why (never an exception:
    one bad row must not break a list, a page or the worker)."""
    try:
        return Run(**_read_row(row))
    except _Unreadable as exc:
        return _unreadable_run(row, str(exc))


def _unreadable_run(row: RowValues, reason: str) -> Run:
    run_id = row.get("run_id")
    run_id = run_id if isinstance(run_id, str) and run_id else "unreadable"
    if run_id not in _WARNED:  # pages read it every second: say it once per process, not once per read
        if len(_WARNED) < 1000:
            _WARNED.add(run_id)
        log.warning("ledger row %r cannot be read (%s); shown as an unreadable run", run_id[:64], reason)

    def kept(name: str) -> Any:
        value = row.get(name)
        return value if isinstance(value, int | float) and not isinstance(value, bool) and (
            abs(value) < float("inf")) else None

    task_id = row.get("task_id")
    created = float(kept("created_at") or 0.0)
    return Run(
        run_id=run_id, created_at=created, updated_at=float(kept("updated_at") or created),
        params={}, est_cost=0.0, task_id=task_id if isinstance(task_id, str) else None, state=UNREADABLE,
        progress=0, submitted_at=None, completed_at=None, gateway_completed_at=None, video_url=None,
        thumbnail_url=None, expires_at=None, video_path=None, poster_path=None, archived_at=None,
        error_code=UNREADABLE,
        error_message=f"Unreadable run: its record in the ledger cannot be read ({reason}). It is kept as it "
                      "is and left alone; nothing is sent or charged for it.",
        group_id=None, parent_id=None, label=None, source="compose", next_poll_at=None, polls=0,
        owner=owner if isinstance(owner := row.get("owner"), str) else None,  # still its owner's to see
    )

