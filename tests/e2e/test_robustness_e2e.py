"""No traceback on any page for any link, a bad setting gets its own page, and a share link shows nothing
of the owner's gateway or money (real `streamlit run`, a separate local gateway process, Chromium).

The hostile links are typed into the address bar as a person (or an attacker) would: raw, percent-encoded
where a browser needs it (%00, %C2%B2), with repeated and empty keys.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from tests.fixtures.servers import DESKTOP, AppServer, GatewayProcess, open_app, screenshot

pytestmark = pytest.mark.e2e

PAGES = {"": "Compose", "compare": "Compare", "history": "History", "run": "Shared run"}
UNKNOWN = "NoSuchRunNoSuchRun0001"
HOSTILE = {
    "unicode-digits": "prompt=x&duration=%C2%B2&durations=%C2%B2,%D9%A5&id=" + "%C2%B2" * 22 + "&run=%C2%B2",
    "huge-numbers": "prompt=x&duration=" + "9" * 5000 + "&durations=" + "9" * 5000,
    "repeated-keys": f"prompt=a&prompt=b&duration=10&duration=5&id={UNKNOWN}&id=../x&modes=std&modes=pro",
    "script": "prompt=%3Cscript%3Ealert(1)%3C/script%3E&mode=%3Cscript%3E"
              "&id=%3Cscript%3Ealert(1)%3C/script%3E&negative_prompt=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&first_frame=javascript:alert(1)",
    "dot-dot": "prompt=x&first_frame=../../etc/passwd&id=../../etc/passwd&group=../..&run=../../x&rerun=../x",
    "unknown-ids": f"id={UNKNOWN}&group={UNKNOWN}&run={UNKNOWN}&rerun={UNKNOWN}",
    "nul-bytes": "prompt=a%00b&id=%00&group=%00&run=x%00&watermark=%00&last_frame=https://x.test/a%00.png",
    "very-long": "prompt=" + "x" * 20_000 + "&id=" + "a" * 5000 + "&negative_prompt=" + "n" * 5000,
    "empty-keys": "=x&&=&prompt=&id=&group=&duration=",
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("robust")
    gateway = GatewayProcess(root / "gateway").start()
    app = AppServer(root / "app", gateway).start()
    try:
        yield app
    finally:
        app.stop()
        gateway.stop()


def assert_clean(page: Any, dialogs: list[str], where: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, where
    body = page.inner_text("body")
    for word in ("Traceback", "ValueError", "Something went wrong on this page"):
        assert word not in body, (where, word)
    assert page.locator("script:text-matches('alert\\\\(1\\\\)')").count() == 0, where
    assert page.locator("img[src='x']").count() == 0, where
    assert dialogs == [], where


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_links_on_every_page(servers: AppServer, browser: Any, case: str) -> None:
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = ctx.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path, title in PAGES.items():
            where = f"/{path}?{case}"
            open_app(page, f"{servers.url}/{path}?{HOSTILE[case]}")
            page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=15_000)
            assert_clean(page, dialogs, where)
    finally:
        ctx.close()


def test_the_issue_example_compare_with_a_superscript_two(servers: AppServer, page: Any) -> None:
    open_app(page, f"{servers.url}/compare?prompt=x&durations=%C2%B2")
    note = "1 value of the durations in the link is not one of 5, 10 or 15"
    page.get_by_text(note).wait_for(timeout=15_000)
    assert_clean(page, [], "compare ²")
    assert page.get_by_label("Prompt", exact=True).input_value() == "x"


def test_a_bad_setting_gets_its_page_and_no_traceback(tmp_path: Path, browser: Any) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"PLAYGROUND_BUDGET_USD": "abc"}).start()
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = ctx.new_page()
        for path in ("", "history", "compare"):
            open_app(page, f"{app.url}/{path}")
            page.get_by_role("heading", name="The playground cannot start").wait_for(timeout=15_000)
            body = page.inner_text("body")
            assert ("PLAYGROUND_BUDGET_USD: PLAYGROUND_BUDGET_USD must be a number of 0 or more (a spend cap "
                    "in US dollars, e.g. 20), but it is 'abc'.") in body
            assert "What to do: Set PLAYGROUND_BUDGET_USD to a number of 0 or more" in body
            assert_clean(page, [], path)
        screenshot(page, "setup-page-bad-budget")
        open_app(page, f"{app.url}/run?id={UNKNOWN}")  # a share link: which setting, not its value
        page.get_by_role("heading", name="The playground cannot start").wait_for(timeout=15_000)
        body = page.inner_text("body")
        assert "PLAYGROUND_BUDGET_USD" in body and "'abc'" not in body
        assert_clean(page, [], "share view")
    finally:
        ctx.close()
        app.stop()
        gateway.stop()
    log = app.log.read_text()
    assert "the playground cannot start: PLAYGROUND_BUDGET_USD" in log  # the details went to the log


def test_a_share_link_shows_no_gateway_url_balance_or_spend(tmp_path: Path, browser: Any) -> None:
    """An anonymous browser holding one share link, against an app on a billed (non-local) gateway."""
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"TOAPIS_API_KEY": "tk-anon-test-0001"})
    app.data_dir.mkdir(parents=True)
    ledger = Ledger(f"sqlite:///{app.db_path}")
    now = time.time()
    run_id = Ledger.new_id()
    row = run_row(run_id, VideoRequest(prompt="a lighthouse at dusk"), 0.184, now=now - 60, state="completed")
    row.update(submitted_at=now - 59, completed_at=now - 30, next_poll_at=None, error_code="expired",
               error_message="The gateway's link expired before it was archived.")
    bulk_insert(ledger, [row])
    ledger.close()
    app.start()
    gateway_host = gateway.url.split("//")[1]  # 127.0.0.1:<port>
    owner = browser.new_context(viewport=DESKTOP)
    stranger = browser.new_context(viewport=DESKTOP)
    try:
        page = owner.new_page()
        open_app(page, app.url)
        page.get_by_text("Balance: $").wait_for(timeout=15_000)
        owner_text = page.inner_text("body")
        # what the owner sees, so the checks below can fail
        assert gateway_host in owner_text and "Spent ≈ $0.18" in owner_text
        balance = next(line for line in owner_text.splitlines() if line.startswith("Balance: $"))

        anon = stranger.new_page()
        frames: list[bytes] = []
        anon.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(
            p.encode() if isinstance(p, str) else bytes(p))))
        open_app(anon, f"{app.url}/run?id={run_id}")
        anon.get_by_text("a lighthouse at dusk").first.wait_for(timeout=15_000)
        anon.get_by_text("Run it yourself (curl / Python)").click()  # the snippet: ToAPIs' public address
        anon.wait_for_timeout(500)
        html, text = anon.content(), anon.inner_text("body")
        screenshot(anon, "share-view-anonymous")
        for secret in (gateway_host, gateway.url, "Balance", balance, "Spent", "in flight", "billed to your"):
            assert secret not in html and secret not in text, secret
        assert not any(gateway_host.encode() in f for f in frames)
        assert "https://toapis.com/v1/videos/generations" in text
        assert anon.locator("[data-testid='stException']").count() == 0
    finally:
        owner.close()
        stranger.close()
        app.stop()
        gateway.stop()


BROKEN_PAGE = '''
import streamlit as st
from lib.ui import last_resort

last_resort.install()
st.title("Broken on purpose")

def explode():
    raise RuntimeError("callback detail /srv/secret/callback")

st.button("Break the callback", on_click=explode)
if st.button("Break the page"):
    raise RuntimeError("page detail /srv/secret/page")

@st.fragment
def part():
    if st.button("Break the fragment"):
        raise RuntimeError("fragment detail /srv/secret/fragment")

part()
'''


def test_the_last_resort_in_a_real_server(tmp_path: Path, browser: Any) -> None:
    """A page built to fail three ways (its own code, a widget callback, a fragment rerun) under plain
    `streamlit run` with the project's config: words and a reference each time, the details in the log."""
    import subprocess
    import sys

    import requests

    from tests.fixtures.servers import ROOT, _stop, free_port

    script = tmp_path / "broken.py"
    script.write_text(BROKEN_PAGE)
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:  # cwd=ROOT: .streamlit/config.toml (showErrorDetails = "none") applies
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port",
                                 str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        page = ctx.new_page()
        open_app(page, f"http://127.0.0.1:{port}/")
        page.get_by_role("heading", name="Broken on purpose").wait_for(timeout=15_000)
        for button, detail in (("Break the page", "page"), ("Break the callback", "callback"),
                               ("Break the fragment", "fragment")):
            page.get_by_role("button", name=button).click()
            words = page.get_by_text("Something went wrong on this page, so it stopped here.")
            words.first.wait_for(timeout=15_000)
            body = page.inner_text("body")
            assert page.locator("[data-testid='stException']").count() == 0, button
            assert f"/srv/secret/{detail}" not in body and "RuntimeError" not in body, button
            ref = body.split("the reference ")[1].split(" ")[0]
            deadline = time.monotonic() + 10
            while f"ref {ref}" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert f"/srv/secret/{detail}" in log.read_text(), button
            assert f"ref {ref}" in log.read_text(), button
            open_app(page, f"http://127.0.0.1:{port}/")  # a clean page for the next way to fail
    finally:
        ctx.close()
        _stop(proc)
