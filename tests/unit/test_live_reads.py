"""Reads keyed on the ledger's change token (lib/live_reads.py): asked once per change, never stale."""
from __future__ import annotations

from pathlib import Path

from lib import live_reads
from lib.contract import VideoRequest
from lib.ledger import Ledger


class Counting:
    """The real ledger, counting the reads the memo is meant to save."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.reads = ledger, 0

    def in_flight(self) -> int:
        self.reads += 1
        return self.ledger.in_flight()

    def spend(self) -> float:
        self.reads += 1
        return self.ledger.spend()

    def changes(self) -> tuple[int]:
        return self.ledger.changes()


def test_nothing_changed_asks_nothing_and_a_change_is_seen_at_once(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        view = Counting(ledger)
        token = view.changes()
        assert live_reads.in_flight(view, token) == 0
        for _ in range(50):  # fifty sessions' ticks, nothing changed
            assert live_reads.in_flight(view, view.changes()) == 0
        assert view.reads == 1
        ledger.create_run(Ledger.new_id(), VideoRequest(prompt="a fox in snow", mode="std", duration=5,
                                                        aspect_ratio="1:1"), 0.18)
        assert live_reads.in_flight(view, view.changes()) == 1  # the next tick after a write sees it
        assert view.reads == 2
        spent = live_reads.spend(view, view.changes())
        assert spent == ledger.spend() and view.reads == 3
        other = Counting(Ledger(f"sqlite:///{tmp_path / 'other.db'}"))  # one memo per ledger
        try:
            assert live_reads.in_flight(other, other.changes()) == 0 and other.reads == 1
        finally:
            other.ledger.close()
    finally:
        ledger.close()
