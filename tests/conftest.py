"""Shared pytest set-up: fixtures live in tests/fixtures/*, one module per real component."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

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

E2E = ROOT / "tests" / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`.ci/run`: -n 2 --dist loadgroup) every browser test goes to one worker and runs
    there one after another, as in a serial run: their cadence and timing checks never compete with another
    Chromium and app server, while unit and AppTest tests fill the other worker. Without xdist the
    marker does nothing."""
    for item in items:
        if E2E in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("e2e"))
