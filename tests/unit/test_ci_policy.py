"""Under CI a service that cannot start fails the run; elsewhere it skips with its reason.

tests/fixtures/ci.py is the one decision the PostgreSQL and Chromium fixtures use.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.ci import in_ci, service_unavailable

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "ci"), [
    ("true", True), ("1", True), ("yes", True), ("TRUE", True), ("anything", True),
    ("", False), ("0", False), ("false", False), ("no", False), ("off", False), (None, False),
])
def test_in_ci(value: str | None, ci: bool) -> None:
    assert in_ci({} if value is None else {"CI": value}) is ci


def test_under_ci_a_missing_service_fails_the_test() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL binaries not found .* CI is set"):
        service_unavailable("PostgreSQL binaries not found", {"CI": "true"})


def test_outside_ci_it_skips_with_the_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="Chromium did not start"):
        service_unavailable("Chromium did not start", {})


def test_the_fixtures_use_the_rule_and_nothing_skips_a_service_by_itself() -> None:
    """No bare pytest.skip in the service fixtures, and no importorskip of the project's own modules."""
    fixtures = "".join((TESTS / "fixtures" / name).read_text() for name in ("ledger.py", "servers.py"))
    assert "pytest.skip(" not in fixtures and fixtures.count("service_unavailable(") >= 5
    for path in TESTS.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"importorskip\(\s*[\"'](lib|tests|bench)\b", text), path
