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
# about 40 % of the browser tests' time, most of it spent waiting (tests/conftest.py, below)
SECOND_GROUP = frozenset({"test_faults_e2e.py", "test_robustness_e2e.py", "test_words_e2e.py"})


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the group (see below)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`.ci/run`: -n 3 --dist loadgroup) the browser tests go to two workers, as two
    groups that each run one test after another (so at most two Chromium tests at once), while unit and
    AppTest tests fill what is left. The second group (SECOND_GROUP) holds the files whose time is mostly
    waiting on the app's own timers (retry backoff, Retry-After, restarts), so the two overlap cheaply.
    Without xdist the group marker does nothing. Browser tests whose checks are about time or motion
    (synced players within 0.1 s, a playing video's place frame by frame, clicks at a human pace against
    the press window, an action within 2 s, guesses per second) are marked `serial` in their files:
    `.ci/run` runs them last, alone, one after another (`-m serial`), and the others beside the unit and
    AppTest tests (`-m "not serial"`). Every browser test that fails is run once more
    (pytest-rerunfailures; `-rR` lists it, so a flaky check stays visible and a real failure fails
    twice). Unit and AppTest tests are never rerun.

    tryfirst: xdist's worker turns the `xdist_group` marker into the "@e2e" suffix of each node id in its
    own pytest_collection_modifyitems, which otherwise runs before this one; without tryfirst the marker
    came too late, and the browser tests were spread over every worker, one Chromium test per worker."""
    for item in items:
        path = Path(str(item.path))
        if E2E in path.parents:
            item.add_marker(pytest.mark.xdist_group("e2e2" if path.name in SECOND_GROUP else "e2e"))
            item.add_marker(pytest.mark.flaky(reruns=1))


_RERUN_ATTEMPTS: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the failure of each attempt that was run again: `-rR` names a rerun but not why, and a flaky
    check can only be fixed from what its first attempt saw (CI logs are all we get of a CI machine)."""
    if report.outcome == "rerun":
        _RERUN_ATTEMPTS.append((report.nodeid, report.longreprtext[-4000:]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for nodeid, text in _RERUN_ATTEMPTS:
        terminalreporter.write_sep("-", f"first attempt of {nodeid} (passed or failed on its rerun)")
        terminalreporter.write_line(text)
