"""Sign-in in headless Debian Chromium against a real OIDC provider process (oidc-provider-mock), a real
`streamlit run app.py` and a real gateway process.

Alice signs in through the provider and makes a run. Bob signs in in a separate browser context: his
Compose and History do not show Alice's run until he turns on "Whole team"; there her run carries her
name and offers no re-run, take or promote, and a hand-made `?rerun=<her run id>` link is refused by lib
in words. Bob opens her share link, presses "Re-run this config" and Generate: the new run is his.
Screenshots of the sign-in screen and of History with the switch, at 1280×800 and 390×844.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fixtures.oidc import OidcProvider
from tests.fixtures.servers import (
    DESKTOP,
    PHONE,
    AppServer,
    GatewayProcess,
    free_port,
    open_app,
    read_ledger_rows,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

ALICE_PROMPT = "A paper boat drifting down a rainy street, alice's run"
ROW_HEIGHT = 46  # lib/ui/history_view.ROW_HEIGHT
HEADER = 35


@pytest.fixture
def signed_app(tmp_path: Path, gateway_process: GatewayProcess,
               oidc_provider: OidcProvider) -> Iterator[AppServer]:
    port = free_port()
    app = AppServer(tmp_path / "app", gateway_process, port=port, extra_env=oidc_provider.env(port)).start()
    yield app
    app.stop()


def _wait_rows(db: Path, pred: Any, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = read_ledger_rows(db) if db.exists() else []
        if pred(rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"ledger never reached the expected state: {rows}")


def _to_top(page: Any) -> None:
    size = page.viewport_size or DESKTOP
    page.mouse.move(size["width"] * 0.6, size["height"] / 2)
    page.mouse.wheel(0, -20_000)
    page.mouse.move(2, 2)  # no hover look on whatever was under the pointer
    page.wait_for_timeout(400)


def sign_in(page: Any, url: str, user: str) -> None:
    """The whole round trip: our sign-in screen, the provider's page, back signed in."""
    open_app(page, url)
    expect(page.get_by_role("heading", name="Sign in to continue")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=user).click(timeout=30_000)  # the provider lists its users as buttons
    page.wait_for_url(f"{url}/**", timeout=30_000)
    wait_for_app(page)
    who = page.locator(".st-key-who_sidebar")
    expect(who).to_contain_text(f"Signed in as {user.title()}", timeout=30_000)


def generate(page: Any, prompt: str | None = None) -> None:
    if prompt is not None:
        page.locator(".st-key-compose_prompt textarea").fill(prompt)
        wait_for_app(page)
    page.locator(".st-key-compose_generate button").click()


def _select_first_row(page: Any) -> None:
    grid = page.locator(".st-key-hist_wide [data-testid='stDataFrame']").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box, "the history table is not on the page"
    page.mouse.click(box["x"] + 16, box["y"] + HEADER + ROW_HEIGHT / 2)


def test_two_users_see_their_own_runs_and_build_on_others_only_through_a_share_link(
    signed_app: AppServer, browser: Any
) -> None:
    url, db = signed_app.url, signed_app.db_path
    # --- the sign-in screen, in words, at both sizes (nothing of the app behind it)
    for name, size in (("sign-in-1280x800", DESKTOP), ("sign-in-390x844", PHONE)):
        ctx = browser.new_context(viewport=size)
        try:
            pg = ctx.new_page()
            open_app(pg, url)
            expect(pg.get_by_role("heading", name="Sign in to continue")).to_be_visible()
            expect(pg.get_by_text("Holding a share link? It opens without signing in.")).to_be_visible()
            assert pg.locator(".st-key-compose_prompt_box").count() == 0
            screenshot(pg, name)
        finally:
            ctx.close()

    alice_ctx = browser.new_context(viewport=DESKTOP)
    bob_ctx = browser.new_context(viewport=DESKTOP)
    try:
        # --- Alice signs in and makes a run
        alice = alice_ctx.new_page()
        sign_in(alice, url, "alice")
        generate(alice, ALICE_PROMPT)
        rows = _wait_rows(db, lambda rs: rs and rs[0]["video_path"])
        assert len(rows) == 1 and rows[0]["owner"] == "alice" and rows[0]["owner_name"] == "Alice"
        alice_run = rows[0]["run_id"]
        expect(alice.locator(f".st-key-card_{alice_run}")).to_be_visible()

        # --- Bob signs in: his Compose and History do not show Alice's run
        bob = bob_ctx.new_page()
        sign_in(bob, url, "bob")
        assert bob_ctx.cookies() != alice_ctx.cookies()
        expect(bob.get_by_text("No runs yet")).to_be_visible()
        assert bob.locator(f".st-key-card_{alice_run}").count() == 0
        open_app(bob, f"{url}/history")
        expect(bob.get_by_text("No runs yet.")).to_be_visible(timeout=15_000)
        assert ALICE_PROMPT not in bob.content()
        # ... until "Whole team": her run, with her name, and no way to act on it
        bob.get_by_text("Whole team", exact=True).click()
        wait_for_app(bob)
        expect(bob.get_by_text("Runs 1–1 of 1").or_(bob.get_by_text("1 run", exact=True))).to_be_visible()
        _select_first_row(bob)
        detail = bob.locator(".st-key-hist_detail")
        expect(detail).to_be_visible(timeout=15_000)
        expect(detail.locator(".st-key-hist_prompt code")).to_have_text(ALICE_PROMPT)
        expect(detail.locator(f".st-key-hist_{alice_run}")).to_contain_text("Alice")  # the owner's badge
        for name in ("Re-run", "Another take", "Promote"):
            assert detail.get_by_role("button", name=name).count() == 0, name
        expect(detail.get_by_role("button", name="Share")).to_be_visible()
        wait_for_app(bob)
        _to_top(bob)
        screenshot(bob, "history-team-1280x800")
        bob.set_viewport_size(PHONE)
        bob.wait_for_timeout(600)
        _to_top(bob)
        screenshot(bob, "history-team-390x844")
        bob.set_viewport_size(DESKTOP)

        # --- lib refuses even a hand-made re-run link of her run (no button needed)
        open_app(bob, f"{url}/?rerun={alice_run}")
        expect(bob.get_by_text("This run belongs to Alice, so you cannot re-run it")).to_be_visible()
        expect(bob.locator(".st-key-compose_prompt textarea")).to_have_value("")

        # --- her share link: her name, Re-run this config, Generate: the run is Bob's
        open_app(bob, f"{url}/run?id={alice_run}")
        expect(bob.locator(".st-key-share_owner")).to_contain_text("Made by Alice")
        assert "alice@example.com" not in bob.content()
        bob.get_by_role("button", name="Re-run this config").click()
        wait_for_app(bob)
        prompt_box = bob.locator(".st-key-compose_prompt textarea")
        expect(prompt_box).to_have_value(ALICE_PROMPT, timeout=15_000)
        generate(bob)
        rows = _wait_rows(db, lambda rs: len(rs) == 2)
        bobs = [r for r in rows if r["run_id"] != alice_run]
        assert len(bobs) == 1 and bobs[0]["owner"] == "bob" and bobs[0]["owner_name"] == "Bob"
        assert [r["owner"] for r in rows if r["run_id"] == alice_run] == ["alice"]  # hers is untouched
        # and Alice, by default, still sees only her own run
        open_app(alice, url)
        expect(alice.locator(f".st-key-card_{alice_run}")).to_be_visible()
        assert alice.locator(f".st-key-card_{bobs[0]['run_id']}").count() == 0
    finally:
        alice_ctx.close()
        bob_ctx.close()
