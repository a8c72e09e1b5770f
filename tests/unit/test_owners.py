"""Runs carry their owner once sign-in is on: own runs by default, a per-user cap beside the team's in the
same transaction, actions on another user's runs refused in lib, and ledgers from before sign-in
(revision 0002) upgraded with every run kept as the team's. On SQLite and on a real PostgreSQL.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command

from lib import compare, migrations, owners, playground
from lib.config import SettingError, load_settings
from lib.contract import VideoRequest
from lib.ledger import Ledger, RunFilter
from tests.unit.test_budget_cap import PRO_15, STD_5, _Worker, race

AUTH = {"server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
        "client_id": "playground", "client_secret": "s", "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "c" * 40}
ALICE = owners.Actor("alice", "Alice", True)
BOB = owners.Actor("bob", "Bob", True)


def process(url: str, tmp_path: Path, *, team: float | None = None,
            user: float | None = None) -> SimpleNamespace:
    env = {"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": "http://127.0.0.1:9"}
    if team is not None:
        env["PLAYGROUND_BUDGET_USD"] = f"{team:.4f}"
    if user is not None:
        env["PLAYGROUND_USER_BUDGET_USD"] = f"{user:.4f}"
    settings = load_settings(env=env, secrets={"auth": AUTH})
    assert settings.sign_in
    return SimpleNamespace(settings=settings, ledger=Ledger(url), worker=_Worker())


# ------------------------------------------------------------------ settings in words


def test_sign_in_settings_are_checked_in_words() -> None:
    assert not load_settings(env={}).sign_in
    env = {"PLAYGROUND_OIDC_METADATA_URL": "http://127.0.0.1:9/.well-known/openid-configuration"}
    with pytest.raises(SettingError, match="PLAYGROUND_OIDC_CLIENT_ID is missing") as err:
        load_settings(env=env)
    assert err.value.name == "PLAYGROUND_OIDC_CLIENT_ID"
    full = {**env, "PLAYGROUND_OIDC_CLIENT_ID": "c", "PLAYGROUND_OIDC_CLIENT_SECRET": "s",
            "PLAYGROUND_OIDC_REDIRECT_URI": "http://127.0.0.1:8501/oauth2callback",
            "PLAYGROUND_OIDC_COOKIE_SECRET": "short-secret"}
    with pytest.raises(SettingError, match=r"has 12 characters.*at least 32") as err:
        load_settings(env=full)
    assert "short-secret" not in str(err.value) and "short-secret" not in err.value.fix
    full["PLAYGROUND_OIDC_COOKIE_SECRET"] = "k" * 32
    with pytest.raises(SettingError, match="must end with /oauth2callback"):
        load_settings(env={**full, "PLAYGROUND_OIDC_REDIRECT_URI": "http://127.0.0.1:8501/"})
    assert load_settings(env=full).sign_in
    with pytest.raises(SettingError, match=r"\[auth\] client_secret in .streamlit/secrets.toml is missing"):
        load_settings(env={}, secrets={"auth": {k: v for k, v in AUTH.items() if k != "client_secret"}})


def test_a_per_user_cap_is_validated_in_words() -> None:
    with pytest.raises(SettingError, match="sign-in is not set up") as err:
        load_settings(env={"PLAYGROUND_USER_BUDGET_USD": "5"})
    assert err.value.name == "PLAYGROUND_USER_BUDGET_USD"
    with pytest.raises(SettingError, match="PLAYGROUND_USER_BUDGET_USD must be a positive number"):
        load_settings(env={"PLAYGROUND_USER_BUDGET_USD": "five"}, secrets={"auth": AUTH})
    capped = load_settings(env={"PLAYGROUND_USER_BUDGET_USD": "2.5"}, secrets={"auth": AUTH})
    assert capped.user_budget_usd == 2.5


# ------------------------------------------------------------------ owners and filters


def test_runs_carry_their_owner_and_lists_filter_by_it(ledger_url: str, tmp_path: Path) -> None:
    p = process(ledger_url, tmp_path)
    try:
        a = playground.submit(p, STD_5, run_id="a1", actor=ALICE)
        b = playground.submit(p, STD_5, run_id="b1", actor=BOB)
        grid = compare.submit_grid(p, compare.expand(compare.GridSpec(prompts=("g",)), p.settings.prices),
                                   "grp", actor=BOB)
        rec = p.ledger.recover("task_by_hand_1", None, owner="alice", owner_name="Alice")
        assert a.run.owner == "alice" and a.run.owner_name == "Alice" and b.run.owner == "bob"
        assert {r.owner for r in grid.runs} == {"bob"} and rec.owner == "alice"
        mine = RunFilter(owner=owners.owner_filter(True, ALICE, whole_team=False))
        assert {r.run_id for r in p.ledger.list_runs(mine)} == {"a1", rec.run_id}
        assert p.ledger.count_runs(mine) == 2 and len(list(p.ledger.iter_runs(mine))) == 2
        everyone = RunFilter(owner=owners.owner_filter(True, ALICE, whole_team=True))
        assert p.ledger.count_runs(everyone) == 3 + len(grid.runs)
        nobody = RunFilter(owner=owners.owner_filter(True, owners.NOBODY, whole_team=False))
        assert p.ledger.count_runs(nobody) == 0  # signed out: an empty list, never everyone's
        assert owners.owner_filter(False, owners.NOBODY, whole_team=False) is None  # no sign-in: all
        assert owners.spend_of(p.ledger.engine, _runs(p.ledger), "alice") == pytest.approx(0.184)
    finally:
        p.ledger.close()


def test_a_signed_in_user_cannot_act_on_another_users_run(ledger_url: str, tmp_path: Path) -> None:
    p = process(ledger_url, tmp_path)
    try:
        theirs = playground.submit(p, STD_5, run_id="alice-run", actor=ALICE).run
        legacy, _ = p.ledger.create_run("team-run", STD_5, 0.1)  # made before sign-in: no owner
        n = p.ledger.count_runs()
        for act in (playground.promote, playground.extend, playground.another_take):
            out = act(p, theirs, actor=BOB)
            assert out.refused and "belongs to Alice" in out.refused and "Re-run this config" in out.refused
        with pytest.raises(owners.NotYours, match="cannot re-run it"):
            playground.rerun(p, theirs, actor=BOB)
        with pytest.raises(owners.NotYours, match="cannot recover it"):
            playground.recover(p, "task_someone_else", run_id=theirs.run_id, actor=BOB)
        assert p.ledger.count_runs() == n
        # The owner may; so may anyone with a team run (it has no owner); a signed-out caller may not.
        assert playground.another_take(p, theirs, actor=ALICE).created
        assert playground.promote(p, legacy, actor=BOB).created
        assert playground.submit(p, STD_5, run_id="x").refused == owners.SIGN_IN_FIRST
        assert compare.submit_grid(p, compare.expand(compare.GridSpec(prompts=("g",)), p.settings.prices),
                                   "g2").refused == owners.SIGN_IN_FIRST
    finally:
        p.ledger.close()


# ------------------------------------------------------------------ the per-user cap


def test_the_per_user_cap_refuses_in_words_and_leaves_others_alone(ledger_url: str, tmp_path: Path) -> None:
    p = process(ledger_url, tmp_path, team=10.0, user=0.5)
    try:
        assert playground.submit(p, STD_5, run_id="a1", actor=ALICE).created   # $0.18
        assert playground.submit(p, STD_5, run_id="a2", actor=ALICE).created   # $0.37
        out = playground.submit(p, STD_5, run_id="a3", actor=ALICE)            # $0.55 > $0.50
        assert out.refused and "of your own $0.50 budget is left" in out.refused
        assert "PLAYGROUND_USER_BUDGET_USD" in out.refused
        assert playground.submit(p, STD_5, run_id="b1", actor=BOB).created     # Bob's own cap is untouched
        p.ledger.create_run("legacy", STD_5, 5.0)                              # team runs count for no user
        assert playground.submit(p, STD_5, run_id="b2", actor=BOB).created
    finally:
        p.ledger.close()


def test_the_team_cap_still_applies_with_its_own_words(ledger_url: str, tmp_path: Path) -> None:
    p = process(ledger_url, tmp_path, team=0.3, user=5.0)
    try:
        assert playground.submit(p, STD_5, run_id="a1", actor=ALICE).created
        out = playground.submit(p, STD_5, run_id="b1", actor=BOB)
        assert out.refused and "of the $0.30 budget is left" in out.refused and "your own" not in out.refused
    finally:
        p.ledger.close()


def test_simultaneous_presses_of_one_user_never_pass_their_cap(ledger_url: str, tmp_path: Path) -> None:
    """8 × $0.94 by Alice from 4 processes against her $1.00 (no team cap: the per-user cap alone takes
    the lock), 2 rounds: exactly one fits each round, while Bob's presses in the same race are judged on
    his own cap."""
    procs = [process(ledger_url, tmp_path, user=1.0) for _ in range(4)]
    try:
        for round_ in range(2):
            cap = 1.0 + round_ * 0.9375
            for q in procs:
                q.settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path),
                                                "PLAYGROUND_USER_BUDGET_USD": f"{cap:.4f}"},
                                           secrets={"auth": AUTH})
            outcomes = race(10, lambda i, r=round_: playground.submit(
                procs[i % 4], PRO_15, run_id=f"r{r}-{i}", actor=BOB if i >= 8 else ALICE))
            alice = outcomes[:8]
            assert sum(o.created for o in alice) == 1, (round_, [o.refused for o in alice])
            assert all("your own" in o.refused for o in alice if not o.created)
            assert sum(o.created for o in outcomes[8:]) == 1  # Bob: one of his two fits his own cap
            spent = owners.spend_of(procs[0].ledger.engine, _runs(procs[0].ledger), "alice")
            assert spent <= cap + 1e-9
    finally:
        for q in procs:
            q.ledger.close()


def _runs(ledger: Ledger) -> sa.Table:
    from lib.ledger import runs_table

    del ledger
    return runs_table


# ------------------------------------------------------------------ revision 0003 on a 0002 ledger


def test_a_0002_ledger_upgrades_with_every_run_kept_as_the_teams(ledger_url: str) -> None:
    engine = sa.create_engine(ledger_url, poolclass=sa.pool.NullPool)
    if engine.dialect.name == "sqlite":
        Path(engine.url.database or "").parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.config(conn), "0002")
        now = time.time()
        with engine.begin() as conn:
            assert migrations.current(conn) == ("0002",)
            for i in range(3):
                conn.execute(sa.text(
                    "INSERT INTO runs (run_id, created_at, updated_at, params, est_cost, state, source, "
                    "progress, polls, not_found, search_text) VALUES (:id, :t, :t, :p, 0.184, 'completed', "
                    "'compose', 100, 2, 0, 'a fox')"),
                    {"id": f"old{i}", "t": now - i, "p": '{"prompt": "a fox", "mode": "std", "duration": 5}'})
    finally:
        engine.dispose()
    ledger = Ledger(ledger_url)  # the app opening it: upgrades to head under its lock
    try:
        assert ledger.schema_revision == migrations.head()
        runs = ledger.list_runs()
        assert [r.run_id for r in runs] == ["old0", "old1", "old2"]
        assert all(r.owner is None and r.owner_name is None and r.params["prompt"] == "a fox" for r in runs)
        assert {owners.owner_label(r) for r in runs} == {"Team"}
        assert ledger.count_runs(RunFilter(owner="alice")) == 0
        assert owners.may_act(True, runs[0], BOB)  # a team run stays open to every signed-in user
    finally:
        ledger.close()


def test_the_claims_become_an_actor_with_a_readable_name() -> None:
    assert owners.actor_from_claims({"sub": "u1", "name": "Ada L."}) == owners.Actor("u1", "Ada L.", True)
    assert owners.actor_from_claims({"sub": "u2", "email": "bo@example.com"}).name == "bo"
    assert owners.actor_from_claims({"sub": "u3"}).name == owners.ANYONE
    assert owners.actor_from_claims({"email": "x@example.com"}) == owners.NOBODY  # no subject: nobody
    assert owners.actor_from_claims({"sub": ""}) == owners.NOBODY
    assert VideoRequest  # the contract module is what runs are built from here
