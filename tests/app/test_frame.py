"""The shared frame: every page calls it first; passcode gate; sidebar facts; finished-run toasts."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import Ledger
from lib.ui import state
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


def _first_statement(tree: ast.Module) -> ast.stmt:
    body = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the module docstring
    if body and isinstance(body[0], ast.If) and ast.unparse(body[0].test) == "__name__ == '__main__'":
        # app.py: the page is the script run's branch (the other one is the st.App entry)
        body = [n for n in body[0].body if not isinstance(n, ast.Import | ast.ImportFrom)]
    return body[0]


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_every_page_calls_the_frame_first(path):
    first = _first_statement(ast.parse(path.read_text()))
    assert isinstance(first, ast.Assign), f"{path.name}: first statement is {ast.dump(first)[:80]}"
    assert [t.id for t in first.targets if isinstance(t, ast.Name)] == ["services"]
    call = first.value
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "frame.render", ast.unparse(call)


def test_pages_exist():
    assert (ROOT / "app.py").is_file() and len(PAGE_FILES) >= 2


def test_app_py_is_an_st_app_entry_that_streamlit_run_finds():
    """`streamlit run app.py` serves app.py's `app = st.App(...)` (with the archive route) when its AST
    discovery finds it; otherwise the archive would not be served at all."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.import_string == "app:app"


def test_importing_app_py_as_a_module_draws_nothing_and_starts_nothing():
    """What uvicorn does at start-up: import `app`. No page code may run then (no services started, no
    bare-mode Streamlit calls); the module only offers `app`, an st.App whose routes include the archive."""
    import subprocess
    import sys

    code = ("import sys, threading; import app; from lib.ui import state; import streamlit as st; "
            "assert isinstance(app.app, st.App), type(app.app); "
            "paths = [getattr(r, 'path', '') for r in app.app._user_routes]; "
            "assert any(p.startswith('/archive/') for p in paths), paths; "
            "assert not state._STARTED; assert not hasattr(app, 'services'); "
            "assert threading.active_count() == 1, threading.enumerate(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert "ScriptRunContext" not in out.stderr and "No runtime found" not in out.stderr, out.stderr[-2000:]


def sidebar_text(at: AppTest) -> str:
    parts = [unescape_md(e.value) for kind in ("markdown", "caption") for e in getattr(at.sidebar, kind)]
    return " ".join(parts)


def test_sidebar_says_gateway_spend_and_in_flight(isolated, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "5")
    at = AppTest.from_file(APP, default_timeout=30).run()
    text = sidebar_text(at)
    assert "Local gateway" in text and "nothing is billed" in text
    assert "No runs in flight" in text
    assert [p.label for p in at.sidebar.get("page_link")][:1] == ["Compose"]
    assert any("of the $5.00 budget" in unescape_md(p.proto.text) for p in at.sidebar.get("progress"))


PASSCODE = "open sesame, friend"


def guess(at: AppTest, text: str) -> AppTest:
    at.text_input(key="passcode_input").set_value(text)
    return at.button[0].click().run()


def test_passcode_gate(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_PASSCODE", PASSCODE)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [w.label for w in at.text_input] == ["Passcode"] and not at.text_area
    assert [b.label for b in at.button] == ["Unlock"]
    guess(at, "wrong")
    assert any("not right" in e.value for e in at.error) and not at.text_area
    guess(at, PASSCODE)
    assert "Prompt" in [w.label for w in at.text_area]


def test_toast_when_a_run_finishes_on_another_page(isolated, monkeypatch):
    monkeypatch.setenv("LOCAL_GATEWAY_SPEED", "4")  # ~4 s: still in flight when History first draws
    at = AppTest.from_file(APP, default_timeout=30).run()
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    ledger.create_run("toast-me", VideoRequest("A kite over dunes", duration=5), 0.18)
    state.services().worker.wake()
    at.switch_page("pages/history.py").run()
    assert "1 run in flight" in sidebar_text(at)
    deadline = time.monotonic() + 60
    seen: list[str] = []
    while time.monotonic() < deadline and not any("Video ready" in t for t in seen):
        time.sleep(0.3)
        at.run()
        seen += [t.value for t in at.toast]
    assert any("Video ready" in t and "kite" in t for t in seen), seen


def test_share_view_stays_open_behind_a_passcode_and_hides_the_account(monkeypatch, isolated):
    monkeypatch.setenv("PLAYGROUND_PASSCODE", PASSCODE)
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "25")
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    ledger.create_run("shared-run-0001", VideoRequest("A lighthouse in fog", duration=5), 0.18)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [w.label for w in at.text_input] == ["Passcode"]
    at.switch_page("pages/run.py")
    at.query_params["id"] = "shared-run-0001"
    at.run()
    assert "Passcode" not in [w.label for w in at.text_input]
    assert at.get_by_key("share_prompt").code[0].value == "A lighthouse in fog"
    side = sidebar_text(at)
    assert "Spent" not in side and "Balance" not in side and "budget" not in side
    assert "in flight" not in side


def test_pages_follow_the_runs_they_draw_outside_fragments(isolated):
    """History follows its live rows (and new runs on page 1), the share view its run; Compose follows
    nothing, because its run cards refresh in their own fragment."""
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    ledger.create_run("follow-live", VideoRequest("A tram in the rain", duration=5), 0.18)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert at.session_state["_live_follow"] == {} and at.session_state["_live_follow_new"] is False
    assert at.session_state["_live_busy"] is True
    at.switch_page("pages/history.py").run()
    assert set(at.session_state["_live_follow"]) == {"follow-live"}
    assert at.session_state["_live_follow_new"] is True
    at.switch_page("pages/run.py")
    at.query_params["id"] = "follow-live"
    at.run()
    assert set(at.session_state["_live_follow"]) == {"follow-live"}
    assert at.session_state["_live_follow_new"] is False
