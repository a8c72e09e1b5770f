"""A run's pair: the same settings in the other mode (std 720p beside pro 1080p).

Why it is looked up, not remembered: "Open in compare" on a single run should show it beside a run that
already exists (made on Compose, in a grid, by a promotion) rather than pay for both again; the ledger is
the only place that knows what exists, and a pair made later from the Compare page is found the same way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lib.contract import MODES, VideoRequest
from lib.ledger import COMPLETED, FAILED, RunFilter

if TYPE_CHECKING:
    from lib.ledger import Ledger, Run

SCAN = 200  # candidates read per lookup (same prompt text, other mode, same duration): newest first


def other_mode(request: VideoRequest) -> str:
    return next(m for m in MODES if m != request.effective_mode)


def pair_request(request: VideoRequest) -> VideoRequest:
    """The request the pair would send: everything the same but the mode."""
    return request.replace(mode=other_mode(request))


def _settings(request: VideoRequest) -> tuple[Any, ...]:
    """What must match for two runs to be a pair (defaults applied, mode left out)."""
    return (request.prompt, request.negative_prompt or None, request.effective_duration,
            request.effective_aspect, tuple(request.image_urls), bool(request.watermark))


def find_pair(ledger: Ledger, run: Run) -> Run | None:
    """The best run of the other mode with `run`'s settings: a finished one, else the newest that has
    not failed, else None (a failed run is no pair: there is nothing to watch)."""
    if run.unreadable or not run.request.prompt:
        return None
    want = _settings(run.request)
    flt = RunFilter(text=run.request.prompt, modes=(other_mode(run.request),),
                    durations=(run.request.effective_duration,))
    candidates = [r for r in ledger.list_runs(flt, limit=SCAN)
                  if r.run_id != run.run_id and not r.unreadable and _settings(r.request) == want]
    live = [r for r in candidates if r.state != FAILED]
    done = [r for r in live if r.state == COMPLETED]
    best = done or live
    return best[0] if best else None
