"""One formatter for money and one set of state words (issue 14 item 4)."""
from __future__ import annotations

import pytest

from lib import contract, history, money, state_words
from lib.contract import Prices, VideoRequest
from lib.ledger import STATES


@pytest.mark.parametrize(("amount", "text"), [
    (0.625, "$0.63"),        # pro 10 s: Python's :.2f says 0.62 (half to even), the browser 0.63
    (0.3125, "$0.31"),       # pro 5 s
    (0.184, "$0.18"),        # std 5 s
    (0.185, "$0.19"),        # half up on the written value, not its binary expansion (0.18499…)
    (0.005, "$0.01"),
    (0.004, "$0.00"),
    (-0.004, "$0.00"),       # never "-$0.00"
    (-1.5, "-$1.50"),
    (1234.5, "$1,234.50"),
    (0, "$0.00"),
    (None, "$0.00"),
    (float("nan"), "$0.00"),
    (float("inf"), "$0.00"),
])
def test_usd_rounds_half_up(amount: float | None, text: str) -> None:
    assert money.usd(amount) == text


def test_cents_are_what_usd_prints() -> None:
    """A table column formats cents() with sprintf: it must show what the card shows."""
    for amount in (0.625, 0.185, 0.3125, 0.9375, 0.184, 12.345):
        assert f"${money.cents(amount):,.2f}" == money.usd(amount)


def test_one_run_one_price_on_card_history_and_estimate() -> None:
    """The pro 10 s run of the issue: the same cents in the estimate, the table row and the detail."""
    cost = contract.estimate_cost(VideoRequest(prompt="x", mode="pro", duration=10), Prices())
    assert cost == 0.625
    assert money.approx(cost) == "≈ $0.63"
    assert contract.format_estimate(cost) == "≈ $0.63 (estimate)"
    assert money.cents(cost) == 0.63


def test_every_ledger_state_has_words_and_history_uses_them() -> None:
    assert set(state_words.FILTER_LABELS) == set(STATES)
    assert history.STATE_LABELS == state_words.FILTER_LABELS
    assert state_words.words("completed") == "Done"
    assert state_words.words("in_progress") == "Generating"
    assert state_words.words("draft") == "Waiting to send"
    assert state_words.words("unreadable") == "Unreadable run"
    # a state written by a newer version is shown as stored, not hidden
    assert state_words.words("paused") == "paused"
    assert state_words.badge("paused").color == "gray"
    assert len({w.words for w in state_words.WORDS.values()}) == len(state_words.WORDS)
