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


def test_a_rerun_prints_why_its_first_attempt_failed(tmp_path: Path) -> None:
    """`-rR` names a rerun; tests/conftest.py adds what the first attempt saw, so a flake on a CI machine
    can be fixed from its log."""
    import os
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_logreport, pytest_terminal_summary  # noqa: F401\n")
    (tmp_path / "test_once.py").write_text(
        "import pytest\n"
        "from pathlib import Path\n\n"
        "@pytest.mark.flaky(reruns=1)\n"
        "def test_fails_once():\n"
        f"    flag = Path({str(tmp_path / 'flag')!r})\n"
        "    if not flag.exists():\n"
        "        flag.write_text('x')\n"
        "        assert 'the page' == 'the card', 'first attempt saw the page'\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-p", "no:randomly", "-rR", str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 rerun" in out.stdout
    first = out.stdout.index("first attempt of ")
    assert "first attempt saw the page" in out.stdout[first:]
