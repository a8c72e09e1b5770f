"""Figure 2's fair floor: the same page drawing the same elements, its data from constants.

Why this floor: an empty page enqueues nothing, so "page ÷ empty page" measures what a page draws, not
what it costs beyond drawing. The floor runs the very same page script (same lib/ui drawing, same
widgets, same element count) but with the process's Services replaced by `FloorServices`: on the
recording run every call a page makes into the ledger, the gateway client and the archive goes to the
real object and its answer is kept; on the timed runs every such call returns the kept answer (a
constant) and nothing reaches SQLite or the network. The worker is absent. So page − floor is exactly
what data access (queries, caches, their keys) adds to drawing; calls the floor could not answer from
its constants are counted (`misses`) and reported, so a floor that secretly hit the ledger shows up.
"""
from __future__ import annotations

from typing import Any


class Recorded:
    """A stand-in for one service object: answers each call with what the real one answered first."""

    def __init__(self, target: Any, name: str, misses: dict[str, int]) -> None:
        self._target, self._name, self._misses = target, name, misses
        self._memo: dict[tuple[str, str], Any] = {}
        self.frozen = False

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            key = (attr, repr((args, sorted(kwargs.items()))))
            if key in self._memo:
                return self._memo[key]
            if self.frozen:
                label = f"{self._name}.{attr}"
                self._misses[label] = self._misses.get(label, 0) + 1
            result = value(*args, **kwargs)
            self._memo[key] = result
            return result

        return call


class _NoWorker:
    """The floor has no worker: pages only wake it after a press, which a rerun does not make."""

    def wake(self) -> None:
        return None


class FloorServices:
    """The Services a page sees on the floor: settings as they are, everything else from constants."""

    def __init__(self, real: Any) -> None:
        self.misses: dict[str, int] = {}
        self.settings = real.settings
        self.ledger = Recorded(real.ledger, "ledger", self.misses)
        self.client = Recorded(real.client, "client", self.misses)
        self.archive = Recorded(real.archive, "archive", self.misses)
        self.worker = _NoWorker()
        self.local_gateway = None
        self.limiter = real.limiter
        self._recorded = (self.ledger, self.client, self.archive)
        self._real_balance = real.balance
        self._balance: Any = None
        self._balance_seen = False

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def balance(self) -> Any:
        if not self._balance_seen:
            self._balance, self._balance_seen = self._real_balance(), True
        return self._balance

    def freeze(self) -> None:
        """From now on every call is a constant (or a counted miss)."""
        for r in self._recorded:
            r.frozen = True

    def stop(self) -> None:
        return None
