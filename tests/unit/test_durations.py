"""One style for durations on every screen (lib/durations.py): the table and the cards agree."""
from __future__ import annotations

import pytest

from lib import durations


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (float("nan"), "—"), (float("inf"), "—"), (-3, "0 s"), (0.4, "0 s"), (42.4, "42 s"),
    (59.6, "1 min 00 s"), (185, "3 min 05 s"), (3599, "59 min 59 s"), (3600, "1 h 00 min"),
    (7800, "2 h 10 min"), (90000, "1 d 1 h"),
])
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert durations.format_seconds(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "< 1 min"), (59.9, "< 1 min"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 00 min"),
    (83_579, "23 h 12 min"),
])
def test_countdown_floors_to_the_minute(seconds: float, text: str) -> None:
    assert durations.countdown(seconds) == text


def test_every_screen_uses_the_one_formatter() -> None:
    """The modules that print durations take them from lib.durations, not from a copy of their own."""
    from lib import history, playground, queue_estimate
    from lib.ui import card, player, share_view

    assert not hasattr(playground, "format_seconds")
    for module in (history, queue_estimate, card, player, share_view):
        assert module.format_seconds is durations.format_seconds, module.__name__
