"""No traceback on any page, for any input (AppTest): hostile links on every page, bad settings and an
unreachable ledger, an unreadable ledger row, and the last-resort handler.

"No traceback" is checked three ways on every page: no stException element, no element whose text looks
like a Python exception, and the page's own title drawn (so it did not just stop early).
"""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row, runs_table
from lib.ui import last_resort
from lib.ui.setup_page import TITLE as SETUP_TITLE
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = {"app.py": "Compose", "pages/compare.py": "Compare", "pages/history.py": "History",
         "pages/presets.py": "Presets", "pages/run.py": "Shared run", "pages/sequence.py": "Sequence"}
PUBLIC = ("pages/run.py", "pages/sequence.py")  # share views: open to anyone holding a link
UNKNOWN_ID = "NoSuchRunNoSuchRun0001"
PASSWORD = "Sup3r-Secret-DB-pass"
TRACE_WORDS = ("Traceback", "ValueError", "TypeError", "KeyError", "OperationalError", 'File "/')

# every key any page reads, each with a hostile value (pages ignore the keys they do not read)
HOSTILE: dict[str, dict[str, Any]] = {
    "unicode-digits": {"prompt": "x", "duration": "²", "durations": "²,٥", "id": "²" * 22, "group": "٥" * 22,
                       "run": "²" * 22},
    "huge-numbers": {"prompt": "x", "duration": "9" * 5000, "durations": "9" * 5000, "id": "9" * 5000},
    "repeated-keys": {"prompt": ["first", "second"], "duration": ["10", "5"], "durations": ["5", "10,15"],
                      "id": [UNKNOWN_ID, "../x"], "modes": ["std", "pro"]},
    "script": {"prompt": "<script>alert(1)</script>", "mode": "<script>", "modes": "<script>",
               "id": "<script>alert(1)</script>", "first_frame": "javascript:alert(1)",
               "negative_prompt": "<img src=x onerror=alert(1)>"},
    "dot-dot": {"prompt": "x", "first_frame": "../../etc/passwd", "id": "../../etc/passwd",
                "group": "../..", "run": "../../x", "rerun": "../x", "aspects": "../"},
    "unknown-ids": {"id": UNKNOWN_ID, "group": UNKNOWN_ID, "run": UNKNOWN_ID, "rerun": UNKNOWN_ID},
    "nul-bytes": {"prompt": "a\x00b", "id": "\x00", "group": "%00", "run": UNKNOWN_ID + "\x00",
                  "watermark": "\x00", "last_frame": "https://x.test/a\x00.png"},
    "very-long": {"prompt": "x" * 20_000, "negative_prompt": "n" * 20_000, "id": "a" * 5000,
                  "first_frame": "https://x.test/" + "a" * 10_000, "durations": ",".join(["5"] * 3000)},
    "empty-keys": {"": "x", "prompt": "", "id": "", "group": "", "duration": "", "watermark": ""},
}


def all_text(at: AppTest) -> str:
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "code", "info", "warning",
                 "error", "success", "exception"):
        parts += [unescape_md(str(e.value)) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_no_traceback(at: AppTest, where: str) -> None:
    assert not at.exception, (where, [e.value for e in at.exception])
    text = all_text(at)
    for word in TRACE_WORDS:
        assert word not in text, (where, word)


def open_page(page: str, query: dict[str, Any], *, url: str = "http://127.0.0.1:8501/") -> AppTest:
    """Open the app, then `page` with `query`, the way a link does (params are set for the new page)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.context["url"] = url
    at.run()
    for key, value in query.items():
        at.query_params[key] = value
    if page == "app.py":
        at.run()
    else:
        at.switch_page(page).run()
    return at


# ------------------------------------------------------------------ hostile links on every page


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("page", PAGES)
def test_hostile_links_never_show_a_traceback(page: str, case: str) -> None:
    at = open_page(page, HOSTILE[case])
    assert_no_traceback(at, f"{page}?{case}")
    assert PAGES[page] in [t.value for t in at.title], (page, case, [t.value for t in at.title])


def test_hostile_ids_on_a_postgresql_ledger(monkeypatch: pytest.MonkeyPatch, pg_empty_url: str) -> None:
    """PostgreSQL refuses a NUL in a text parameter (SQLite does not): ids must never reach it unread."""
    monkeypatch.setenv("PLAYGROUND_DB_URL", pg_empty_url)
    nul_ids = {"id": UNKNOWN_ID + "\x00", "group": "\x00" + UNKNOWN_ID, "run": UNKNOWN_ID[:10] + "\x00",
               "rerun": UNKNOWN_ID + "\x00"}
    for page in PAGES:
        for case, query in (("nul-ids", nul_ids), *((c, HOSTILE[c]) for c in ("nul-bytes", "unknown-ids"))):
            at = open_page(page, query)
            assert_no_traceback(at, f"postgres {page}?{case}")


def test_compare_link_with_unicode_digits_is_read_with_a_note() -> None:
    """The issue's own example: /compare?prompt=x&durations=² showed a ValueError traceback."""
    at = open_page("pages/compare.py", {"prompt": "x", "durations": "²"})
    assert_no_traceback(at, "compare ²")
    info = " ".join(unescape_md(i.value) for i in at.info)
    assert "Settings filled in from the shared grid" in info
    assert "1 value of the durations in the link is not one of 5, 10 or 15 and was left out." in info
    assert at.text_area(key="cmp_prompt_0").value == "x"
    assert at.session_state["cmp_durations"] == [5]


def test_compose_link_notes_what_it_left_out() -> None:
    at = open_page("app.py", {"prompt": "a fox", "duration": "²", "mode": "4k", "watermark": "maybe"})
    assert_no_traceback(at, "compose")
    info = [unescape_md(i.value) for i in at.info]
    assert "The duration in the link is not a whole number; it was left out." in info
    assert "The mode in the link is not one kling-v3 offers; std (720p) is selected." in info
    assert "The watermark setting in the link is not true or false; it was left out." in info
    assert at.text_area(key="compose_prompt").value == "a fox"


def test_share_link_with_a_malformed_id_says_not_found() -> None:
    at = open_page("pages/run.py", {"id": "../../etc/passwd"})
    assert [unescape_md(w.value) for w in at.warning] == [
        "This link does not match any run. Check you copied the whole link."]


# ------------------------------------------------------------------ settings and ledger that do not work


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("page", PAGES)
def test_a_bad_setting_shows_its_page_on_every_page(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "abc")
    at = open_page(page, {})
    assert_no_traceback(at, page)
    assert [t.value for t in at.title] == [SETUP_TITLE]
    text = all_text(at)
    if page in PUBLIC:  # a share link: a stranger reads which setting, not its value
        assert "PLAYGROUND_BUDGET_USD" in text and "abc" not in text
        return
    assert ("PLAYGROUND_BUDGET_USD: PLAYGROUND_BUDGET_USD must be a number of 0 or more (a spend cap in US "
            "dollars, e.g. 20), but it is 'abc'.") in text
    assert ("**What to do:** Set PLAYGROUND_BUDGET_USD to a number of 0 or more (a spend cap in US dollars, "
            "e.g. 20), or remove it for no spend cap.") in text


def test_an_unreachable_database_names_the_setting_and_never_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{closed_port()}/ledger"
    monkeypatch.setenv("PLAYGROUND_DB_URL", url)
    for page in PAGES:
        at = open_page(page, {})
        assert_no_traceback(at, page)
        assert [t.value for t in at.title] == [SETUP_TITLE]
        text = all_text(at)
        assert PASSWORD not in text and "PLAYGROUND_DB_URL" in text
        if page not in PUBLIC:
            assert "The ledger cannot be opened: the database server cannot be reached." in text
            assert "The ledger URL in use is postgresql+psycopg://app:***@127.0.0.1:" in text
        else:
            assert "127.0.0.1" not in text and "cannot be reached" not in text


def test_behind_a_passcode_strangers_get_no_details(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_PASSCODE", "otter-PASSCODE-7788")
    monkeypatch.setenv("PLAYGROUND_DB_URL", f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{closed_port()}/x")
    text = all_text(open_page("app.py", {}))
    assert "PLAYGROUND_DB_URL" in text and "127.0.0.1" not in text and "otter" not in text


def test_the_app_recovers_once_the_setting_is_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "abc")
    at = open_page("app.py", {})
    assert [t.value for t in at.title] == [SETUP_TITLE]
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "20")  # what a restart with the fixed value does
    at.run()
    assert_no_traceback(at, "fixed")
    assert "Compose" in [t.value for t in at.title]


# ------------------------------------------------------------------ an unreadable ledger row


def seed_with_a_damaged_row(db: Path) -> tuple[str, str]:
    ledger = Ledger(f"sqlite:///{db}")
    try:
        now = time.time()
        healthy, damaged = "HealthyRunHealthyRun01", "DamagedRunDamagedRun01"
        rows = []
        for run_id, at in ((healthy, now - 60), (damaged, now - 30)):
            row = run_row(run_id, VideoRequest(prompt=f"prompt of {run_id}"), 0.18, now=at, state="completed")
            row.update(submitted_at=at + 1, completed_at=at + 20, next_poll_at=None)
            rows.append(row)
        bulk_insert(ledger, rows)
        with ledger.engine.begin() as conn:
            conn.execute(sa.update(runs_table).where(runs_table.c.run_id == damaged)
                         .values(params="{this is not json", state="paused"))
    finally:
        ledger.close()
    return healthy, damaged


def test_an_unreadable_row_on_compose_history_and_the_share_view(isolated: Path) -> None:
    healthy, damaged = seed_with_a_damaged_row(isolated / "ledger.db")

    at = open_page("app.py", {})
    assert_no_traceback(at, "compose")
    card = at.get_by_key(f"card_{damaged}")
    assert [m.value for m in card.markdown] == [":gray-badge[:material/broken_image: Unreadable run]"]
    assert [b.label for b in card.button] == []  # nothing to press on a run nobody can read
    [caption] = [unescape_md(c.value) for c in card.caption]
    assert caption.startswith("Unreadable run: its record in the ledger cannot be read (its state 'paused'")
    assert any(f"prompt of {healthy}" in t.value for t in at.text)  # the list around it still works

    at = open_page("pages/history.py", {})
    assert_no_traceback(at, "history")
    table = at.dataframe[0].value
    row = table[table["run_id"] == damaged].iloc[0]
    assert row["state"] == "Unreadable run" and row["prompt"].startswith("(unreadable run:")
    assert (table["run_id"] == healthy).any()

    at = open_page("pages/run.py", {"id": damaged})
    assert_no_traceback(at, "share")
    assert [unescape_md(w.value) for w in at.warning] == [
        "This run's record cannot be read, so it cannot be shown."]


def test_an_unreadable_row_in_the_csv_export(isolated: Path) -> None:
    import csv
    import io

    from lib import history
    from lib.ledger import RunFilter

    healthy, damaged = seed_with_a_damaged_row(isolated / "ledger.db")
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        text = history.export_csv(ledger, RunFilter()).decode("utf-8")
        rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(text))}
    finally:
        ledger.close()
    assert rows[healthy]["state"] == "completed"
    assert rows[damaged]["state"] == "unreadable"
    assert rows[damaged]["error_message"].startswith(
        "Unreadable run: its record in the ledger cannot be read")


# ------------------------------------------------------------------ the last resort


def _page_that_breaks() -> None:
    from lib.ui import last_resort

    last_resort.install()
    raise RuntimeError("boom with internal detail /srv/secret/path")


def test_the_last_resort_shows_words_and_logs_the_details(caplog: pytest.LogCaptureFixture) -> None:
    at = AppTest.from_function(_page_that_breaks, default_timeout=30)
    with caplog.at_level("ERROR", logger="lib.ui.last_resort"):
        at.run()
    assert not at.exception
    [error] = [unescape_md(e.value) for e in at.error]
    assert error.startswith("Something went wrong on this page, so it stopped here. Nothing you did is lost")
    assert "boom" not in error and "/srv/secret/path" not in error
    ref = error.split("the reference ")[1].split(" ")[0]
    assert f"ref {ref}" in caplog.text and "/srv/secret/path" in caplog.text


def _page_with_extras_handler() -> None:
    import streamlit as st
    from streamlit_extras.exception_handler import set_global_exception_handler

    def words(exc: Exception) -> None:
        import streamlit as st

        st.error("handled by streamlit-extras")

    set_global_exception_handler(words)
    st.caption("before")
    raise RuntimeError("boom")


def test_streamlit_extras_exception_handler_does_nothing_on_streamlit_1_67() -> None:
    """Why last_resort does not use it: the function it patches is no longer called for script errors."""
    import streamlit.error_util as eu

    original = eu.handle_uncaught_app_exception.__code__
    try:
        at = AppTest.from_function(_page_with_extras_handler, default_timeout=30).run()
        assert at.exception  # Streamlit's own exception box: the extra's handler never ran
        assert [e.value for e in at.error] == []
    finally:
        eu.handle_uncaught_app_exception.__code__ = original


def test_install_keeps_a_handler_set_by_st_app() -> None:
    class Ctx:
        session_id = "no-such-session"
        on_script_error = staticmethod(lambda exc: None)

    import streamlit.runtime.scriptrunner_utils.script_run_context as src

    ctx = Ctx()
    original = src.get_script_run_ctx
    src.get_script_run_ctx = lambda suppress_warning=False: ctx  # type: ignore[assignment]
    try:
        assert last_resort.install() is False and ctx.on_script_error is not last_resort.handle
        ctx.on_script_error = None  # type: ignore[assignment]
        assert last_resort.install() is True and ctx.on_script_error is last_resort.handle
    finally:
        src.get_script_run_ctx = original


def test_streamlit_is_configured_to_show_no_error_details() -> None:
    """client.showErrorDetails = "none": even Streamlit's own error box names no exception or stack."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
