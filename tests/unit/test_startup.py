"""lib/startup.py: a start that fails becomes the setting's name, what is wrong and what to set.

Each case really starts the services (load_settings + start_services) against the broken setting; the
exception they raise is what the set-up page explains. No case may show a password.
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from lib import startup
from lib.config import Settings, load_settings
from lib.services import start_services

PASSWORD = "Sup3r-Secret-DB-pass"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again once we leave: nothing listens there


def start(env: dict[str, str]) -> tuple[BaseException, Settings | None]:
    """Start as the app does and return what it raised (plus the settings, when they could be read)."""
    settings = None
    try:
        settings = load_settings(env)
        services = start_services(settings, start_worker=False)
    except Exception as exc:  # what the set-up page catches
        return exc, settings
    services.stop()
    raise AssertionError("the services started")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # a base URL (nothing listens): the embedded gateway is not started, the ledger is what fails
    return {"PLAYGROUND_DATA": str(tmp_path / "data"), "TOAPIS_BASE_URL": f"http://127.0.0.1:{closed_port()}"}


def assert_no_secret(problem: startup.StartupProblem) -> None:
    for text in (problem.setting, problem.problem, problem.fix, problem.detail):
        assert PASSWORD not in text


@pytest.mark.parametrize(("name", "value"), [
    ("PLAYGROUND_BUDGET_USD", "abc"), ("PLAYGROUND_BUDGET_USD", "-3"), ("LOCAL_GATEWAY_SPEED", "0"),
    ("LOCAL_GATEWAY_PROGRESS", "slow"),
    ("PLAYGROUND_FIRST_LOOK", "soon"), ("TOAPIS_BASE_URL", "toapis.com"),
])
def test_a_bad_setting_names_itself_and_what_to_set(env: dict[str, str], name: str, value: str) -> None:
    exc, _ = start({**env, name: value})
    problem = startup.diagnose(exc)
    assert problem.setting == name
    assert problem.problem.startswith(f"{name} must be")
    assert problem.fix.startswith(f"Set {name} to")


def test_budget_abc_in_exact_words(env: dict[str, str]) -> None:
    problem = startup.diagnose(start({**env, "PLAYGROUND_BUDGET_USD": "abc"})[0])
    assert problem == startup.StartupProblem(
        "PLAYGROUND_BUDGET_USD",
        "PLAYGROUND_BUDGET_USD must be a number of 0 or more (a spend cap in US dollars, e.g. 20), but it "
        "is 'abc'.",
        "Set PLAYGROUND_BUDGET_USD to a number of 0 or more (a spend cap in US dollars, e.g. 20), or remove "
        "it for no spend cap.")


def test_a_base_url_with_a_password_is_never_echoed(env: dict[str, str]) -> None:
    for url in (f"https://me:{PASSWORD}@toapis.com", f"ftp://me:{PASSWORD}@x", f"http://me:{PASSWORD}@[oops"):
        problem = startup.diagnose(start({**env, "TOAPIS_BASE_URL": url})[0])
        assert problem.setting == "TOAPIS_BASE_URL"
        assert_no_secret(problem)


@pytest.mark.parametrize(("url", "words"), [
    (f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{{port}}/ledger",
     "the database server cannot be reached"),
    (f"postgresql://app:{PASSWORD}@127.0.0.1:{{port}}/ledger", "(psycopg2) is not installed"),
    ("not a url at all", "it is not a database URL this app can use"),
    (f"mysql://app:{PASSWORD}@127.0.0.1/ledger", "is not installed"),
    ("sqlite:///:memory:", "The ledger needs a SQLite file"),
])
def test_a_ledger_that_cannot_be_opened(env: dict[str, str], caplog: pytest.LogCaptureFixture,
                                        url: str, words: str) -> None:
    exc, settings = start({**env, "PLAYGROUND_DB_URL": url.format(port=closed_port())})
    problem = startup.diagnose(exc, settings)
    assert problem.setting == "PLAYGROUND_DB_URL"
    assert words in problem.problem
    assert problem.fix.startswith("Set PLAYGROUND_DB_URL to a database this server can reach")
    assert_no_secret(problem)
    if PASSWORD in url:
        assert "app:***@127.0.0.1" in problem.detail
    with caplog.at_level(logging.ERROR, logger="lib.startup"):
        startup.log_failure(exc, problem, settings)
    assert "Traceback" in caplog.text and PASSWORD not in caplog.text


def test_a_refused_password_on_a_real_postgresql(env: dict[str, str], pg_server: object) -> None:
    """The test server trusts every local login, so ask for a database that does not exist instead."""
    import sqlalchemy as sa

    admin = sa.make_url(pg_server.admin_url)  # type: ignore[attr-defined]
    url = admin.set(database="no_such_db_here", password=PASSWORD).render_as_string(hide_password=False)
    exc, settings = start({**env, "PLAYGROUND_DB_URL": url})
    problem = startup.diagnose(exc, settings)
    assert problem.problem == ("The ledger cannot be opened: the database named in the URL does not exist on "
                               "that server.")
    assert_no_secret(problem)


def test_a_sqlite_file_in_a_folder_that_cannot_be_made(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    exc, settings = start({**env, "PLAYGROUND_DB_URL": f"sqlite:///{blocker}/sub/ledger.db"})
    problem = startup.diagnose(exc, settings)
    assert problem.setting == "PLAYGROUND_DB_URL"
    assert "cannot be created or written" in problem.problem


def test_an_archive_folder_that_cannot_be_made(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    exc, settings = start({**env, "PLAYGROUND_ARCHIVE": str(blocker / "archive")})
    problem = startup.diagnose(exc, settings)
    assert problem.setting == "PLAYGROUND_ARCHIVE"
    assert problem.fix.startswith("Point PLAYGROUND_ARCHIVE at a folder")


def test_anything_else_still_gets_words() -> None:
    problem = startup.diagnose(KeyError("x"))
    assert problem.setting == "" and problem.problem == "The playground could not start (KeyError)."
    assert "server log" in problem.fix


def test_passcode_set_reads_env_then_secrets_without_loading_settings() -> None:
    assert startup.passcode_set({"PLAYGROUND_PASSCODE": "x"}, {})
    assert startup.passcode_set({}, {"PLAYGROUND_PASSCODE": "x"})
    assert not startup.passcode_set({"PLAYGROUND_PASSCODE": "  "}, {"PLAYGROUND_PASSCODE": {"nested": 1}})
