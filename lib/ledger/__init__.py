"""The run ledger, becoming a package: this commit only moves lib/ledger.py (history follows it); the next
one splits it into one module per concept and re-exports the same names here."""
from __future__ import annotations

from lib.ledger.transitions import *  # noqa: F403
from lib.ledger.transitions import _to_run  # noqa: F401
