"""The words on every button that spends: what it makes and what it costs, before the press.

Why in one place: "Promote" once meant pro *and* longer at twice the price with no hint. A spending
button now names the mode, resolution and duration it makes and its estimated price
("Promote · Pro 1080p · 5 s · ≈ $0.31"), built from the very request the press will send, so the
label cannot drift from what is charged.
"""
from __future__ import annotations

from collections.abc import Sequence

from lib import money
from lib.contract import RESOLUTION, Prices, VideoRequest, estimate_cost, sound_cost

_MODE_WORDS = {"std": "Std", "pro": "Pro"}


def quality(request: VideoRequest) -> str:
    """'Pro 1080p', 'Std 720p' (the short side of the output, as people name video sizes)."""
    mode = request.effective_mode
    size = RESOLUTION.get((mode, request.effective_aspect))
    name = _MODE_WORDS.get(mode, mode)
    return f"{name} {min(size)}p" if size else name


def what(request: VideoRequest) -> str:
    """'Pro 1080p · 5 s' (· Sound): what one run of `request` makes."""
    sound = " · Sound" if request.audio is True else ""
    return f"{quality(request)} · {request.effective_duration} s{sound}"


def sound_part(requests: Sequence[VideoRequest], prices: Prices) -> str:
    """' (Sound ≈ $0.75)': the Sound share of a price, named on its own; '' without Sound."""
    part = sum(sound_cost(r, prices) for r in requests)
    return f" (Sound {money.approx(part)})" if part > 0 else ""


def priced(verb: str, request: VideoRequest, prices: Prices) -> str:
    """'Generate · Pro 1080p · 5 s · ≈ $0.31'; without a price when the request cannot be priced."""
    try:
        cost = estimate_cost(request, prices)
    except ValueError:
        return f"{verb} · {what(request)}"
    sound = sound_part([request], prices)
    made = f"{quality(request)} · {request.effective_duration} s" if sound else what(request)
    return f"{verb} · {made} · {money.approx(cost)}{sound}"  # Sound named once, with its price


def pair(requests: Sequence[VideoRequest], prices: Prices, verb: str = "Compare std vs pro") -> str:
    """'Compare std vs pro · 5 s · ≈ $0.49': both runs' price together."""
    if not requests:
        return verb
    try:
        cost = sum(estimate_cost(r, prices) for r in requests)
    except ValueError:
        return f"{verb} · {requests[0].effective_duration} s"
    return f"{verb} · {requests[0].effective_duration} s · {money.approx(cost)}{sound_part(requests, prices)}"


def grid(verb: str, runs: int, total: float) -> str:
    """'Submit grid · 4 runs · ≈ $1.23'."""
    return f"{verb} · {runs} run{'s' if runs != 1 else ''} · {money.approx(total)}"


def take(cost: float) -> str:
    """'Another take · ≈ $0.18': the same settings again (the settings are on the card beside it)."""
    return f"Another take · {money.approx(cost)}"


def extend(request: VideoRequest, prices: Prices) -> str:
    """'Extend to 10 s · ≈ $0.37': a longer run of the same prompt and frames in the same mode."""
    try:
        cost = money.approx(estimate_cost(request, prices))
    except ValueError:
        return f"Extend to {request.effective_duration} s"
    return f"Extend to {request.effective_duration} s · {cost}{sound_part([request], prices)}"
