"""Sign-in on the pages through AppTest: the sign-in screen, own runs first with a "Whole team" switch,
another user's run offered for looking only, and every action on it refused by lib when called anyway.

The [auth] section is given as AppTest secrets (Streamlit reads st.login's settings from there) and the
signed-in user as AppTest.user, which is what st.user returns after a real provider round trip (the
Chromium test, tests/e2e/test_sign_in_e2e.py, does that round trip against a real OIDC provider).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib import owners, playground
from lib.contract import VideoRequest
from lib.ledger import Ledger, bulk_insert, run_row
from lib.ui import card, history_view, state
from lib.ui.text import unescape_md

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
AUTH = {
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    "client_id": "playground",
    "client_secret": "playground-secret",
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "x" * 40,
}
ALICE = {"is_logged_in": True, "sub": "alice", "name": "Alice", "email": "alice@example.com"}
BOB = {"is_logged_in": True, "sub": "bob", "name": "Bob", "email": "bob@example.com"}


@pytest.fixture
def ledger(isolated: Path) -> Any:
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    yield led
    led.close()


def seed(ledger: Ledger, prompt: str, owner: str | None, name: str | None = None) -> str:
    run_id = Ledger.new_id()
    created = time.time() - 600
    row = run_row(run_id, VideoRequest(prompt=prompt, mode="std", duration=5), 0.184, now=created,
                  state="completed", task_id=f"task_{run_id[:12]}", owner=owner, owner_name=name)
    row.update(submitted_at=created + 1, completed_at=created + 31, next_poll_at=None)
    bulk_insert(ledger, [row])
    return run_id


def page(user: dict | None, path: str | None = None, **env: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = dict(AUTH)
    if user is not None:
        at.user = dict(user)
    else:
        at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception, at.exception
    if path:
        at.switch_page(path).run()
        assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [str(getattr(e, "value", "")) for e in at.info] + [str(t.value) for t in at.toast]
    return unescape_md(" ".join(parts))


def history_ids(at: AppTest) -> list[str]:
    frame = next(d for d in at.dataframe if d.key == history_view.TABLE_KEY)
    return list(frame.value["run_id"])


def test_signed_out_sees_the_sign_in_screen_in_words_and_no_runs(ledger: Ledger) -> None:
    seed(ledger, "alice's secret fox", "alice", "Alice")
    at = page(None)
    words = texts(at)
    assert "Sign in to continue" in [s.value for s in at.subheader]
    assert "Sign in with your team account" in words and "Nothing is sent or charged" in words
    assert [b.label for b in at.button] == ["Sign in"]
    # the provider in AUTH is a closed port: said in words, and the button that would fail is disabled
    assert "The sign-in service does not answer right now" in at.warning[0].value and at.button[0].disabled
    assert "alice's secret fox" not in words and not at.text_area  # no Compose form, no runs
    at.switch_page("pages/history.py").run()
    assert [b.label for b in at.button] == ["Sign in"] and not at.dataframe


def test_history_shows_own_runs_by_default_and_the_team_with_the_switch(ledger: Ledger) -> None:
    mine = seed(ledger, "bob's whale", "bob", "Bob")
    theirs = seed(ledger, "alice's fox", "alice", "Alice")
    legacy = seed(ledger, "a run from before sign-in", None)
    at = page(BOB, "pages/history.py")
    assert history_ids(at) == [mine]
    assert "Signed in as Bob" in texts(at)
    at.toggle(key=history_view.TEAM_KEY).set_value(True).run()
    assert set(history_ids(at)) == {mine, theirs, legacy}
    frame = next(d for d in at.dataframe if d.key == history_view.TABLE_KEY).value
    assert dict(zip(frame["run_id"], frame["owner"], strict=True)) == {mine: "Bob", theirs: "Alice",
                                                                       legacy: "Team"}


def test_compose_lists_own_runs_by_default_with_owner_badges_in_the_team_view(ledger: Ledger) -> None:
    seed(ledger, "bob's whale", "bob", "Bob")
    seed(ledger, "alice's fox", "alice", "Alice")
    at = page(BOB)
    shown = [t.value for t in at.text]
    assert "bob's whale" in shown and "alice's fox" not in shown
    at.toggle(key="compose_team").set_value(True).run()
    shown = [t.value for t in at.text]
    assert "bob's whale" in shown and "alice's fox" in shown
    badges = [m.value for m in at.main.markdown if "-badge[" in m.value]
    assert ":violet-badge[:material/person: Alice]" in badges  # on Alice's card; Bob's own has none
    assert sum("material/person" in b for b in badges) == 1


def _card_buttons(at: AppTest, run_id: str) -> set[str]:
    return {b.key.split("_")[1] for b in at.button if b.key and b.key.endswith(run_id)}


def test_another_users_run_offers_no_actions_and_every_action_is_refused_in_lib(ledger: Ledger) -> None:
    theirs = seed(ledger, "alice's fox", "alice", "Alice")
    mine = seed(ledger, "bob's whale", "bob", "Bob")
    at = page(BOB)
    at.toggle(key="compose_team").set_value(True).run()
    assert {"rerun", "take", "promote", "extend"} <= _card_buttons(at, mine)
    assert not {"rerun", "take", "promote", "extend"} & _card_buttons(at, theirs)
    # Called anyway (a forged callback, another tab's id): lib refuses in words and writes nothing.
    services = state.services()
    bob = owners.actor_from_claims(BOB)
    run = ledger.get(theirs)
    before = ledger.count_runs()
    for outcome in (playground.promote(services, run, actor=bob), playground.extend(services, run, actor=bob),
                    playground.another_take(services, run, actor=bob)):
        assert not outcome.ok and "belongs to Alice" in outcome.refused
        assert "Re-run this config" in outcome.refused
    with pytest.raises(owners.NotYours, match="belongs to Alice"):
        playground.rerun(services, run, actor=bob)
    with pytest.raises(owners.NotYours, match="belongs to Alice"):
        playground.recover(services, "task_whatever_1234", run_id=theirs, actor=bob)
    assert ledger.count_runs() == before
    # Signed out (or a caller that forgot who is acting): refused too, never written as the team's.
    outcome = playground.submit(services, VideoRequest(prompt="x"), run_id=Ledger.new_id())
    assert outcome.refused == owners.SIGN_IN_FIRST and ledger.count_runs() == before


def test_pressing_promote_with_another_users_run_id_is_refused_on_the_page(ledger: Ledger) -> None:
    """The AppTest way of a forged press: the card's callback run in Bob's session with Alice's id."""
    theirs = seed(ledger, "alice's fox", "alice", "Alice")
    page(BOB)
    before = ledger.count_runs()
    # run the real callbacks inside the app's script context: a button Bob never saw, pressed anyway
    script = AppTest.from_function(_press_all, default_timeout=30, args=(theirs,))
    script.secrets["auth"] = dict(AUTH)
    script.user = dict(BOB)
    script.run()
    assert not script.exception, script.exception
    toasts = " ".join(unescape_md(t.value) for t in script.toast)
    assert toasts.count("belongs to Alice") == 4, toasts  # promote, extend, another take, re-run
    assert ledger.count_runs() == before


def _press_all(run_id: str) -> None:
    from lib.ui import card as c

    c.press_promote(run_id)
    c.press_extend(run_id)
    c.press_take(run_id)
    c.press_rerun(run_id)


def test_the_share_view_names_the_owner_and_its_rerun_makes_the_viewers_own_run(ledger: Ledger) -> None:
    theirs = seed(ledger, "alice's fox", "alice", "Alice")
    at = page(None)  # anyone holding the link, signed out: the link still opens
    at.query_params["id"] = theirs
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    assert "alice's fox" in [c.value for c in at.code]
    assert "Made by Alice" in texts(at) and "alice@example.com" not in texts(at)
    # Bob (signed in) opens Compose with the link's settings and presses Generate: the run is Bob's.
    services = state.services()
    bob = owners.actor_from_claims(BOB)
    out = playground.submit(services, ledger.get(theirs).request, run_id=Ledger.new_id(), actor=bob)
    assert out.ok and out.run.owner == "bob" and out.run.owner_name == "Bob"


def test_without_sign_in_nothing_changes(ledger: Ledger) -> None:
    """No [auth]: no sign-in screen, no switch, every run listed and every action offered."""
    run_id = seed(ledger, "a team fox", None)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert not [b for b in at.button if b.label == "Sign in"]
    assert not [t for t in at.toggle if t.label == "Whole team"]  # (a card's Favourite switch is a toggle)
    assert {"rerun", "take", "promote", "extend"} <= _card_buttons(at, run_id)
    assert card.VIEW_ACTIONS  # the restricted set exists only for sign-in


def test_another_users_grid_on_compare_offers_no_promote_or_take(ledger: Ledger) -> None:
    group = Ledger.new_id()
    ids = []
    for mode in ("std", "pro"):
        run_id = Ledger.new_id()
        created = time.time() - 600
        row = run_row(run_id, VideoRequest(prompt="alice's grid", mode=mode, duration=5), 0.2, now=created,
                      state="completed", task_id=f"task_{run_id[:12]}", group_id=group, label=mode,
                      source="compare", owner="alice", owner_name="Alice")
        row.update(submitted_at=created + 1, completed_at=created + 31, next_poll_at=None)
        bulk_insert(ledger, [row])
        ids.append(run_id)
    at = page(BOB)
    at.query_params["group"] = group
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert any("made by Alice: look and share only" in unescape_md(c.value) for c in at.caption)
    keys = [b.key or "" for b in at.button]
    cell_actions = [k for k in keys if any(k.endswith(f"_{i}") for i in ids) and "rerun_grid" not in k]
    assert cell_actions == [], keys  # "Re-run this grid" stays: it fills the form for a grid of his own
    at = page(ALICE)  # the owner sees her buttons on the same grid
    at.query_params["group"] = group
    at.switch_page("pages/compare.py").run()
    keys = [b.key or "" for b in at.button]
    assert [k for k in keys if "promote_" in k] and [k for k in keys if "rerun_" in k], keys
