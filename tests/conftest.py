"""Shared pytest set-up: fixtures live in tests/fixtures/*, one module per real component."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = [
    "tests.fixtures.gateway",
    "tests.fixtures.hostile",
    "tests.fixtures.ledger",
    "tests.fixtures.servers",
    "tests.fixtures.seaweed",
    "tests.fixtures.oidc",
]
