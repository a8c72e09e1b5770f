"""PLAYGROUND_BUDGET_USD is a hard cap: the spend check and the insert are one transaction.

Attack: press at once from many sessions or processes so that each reads the old spend before any
insert lands. Run against the code before Ledger.create_runs, these tests failed on both backends: 8 of 8
(SQLite) and 7 of 8 (PostgreSQL) $0.94 presses accepted against $1.00, two grids written as 6 + 6 or
4 + 8 cells against $4.00. On SQLite AND on a real PostgreSQL, each "process" here is its own Ledger (own
engine and pool) and threads start together on a barrier.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lib import compare, playground
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.ledger import FAILED, Ledger, LedgerError, NewRun

PRO_15 = VideoRequest("a lighthouse in a storm, pro", mode="pro", duration=15)   # $0.9375 at default prices
STD_5 = VideoRequest("a kite over dunes", mode="std", duration=5)                 # $0.184


def race(n: int, fn: Callable[[int], Any], timeout: float = 120) -> list[Any]:
    """fn(i) in n threads released at once; the first error is re-raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = fn(i)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]
    return results


class _Worker:
    def wake(self) -> None:
        """No worker runs here: nothing is sent, only the ledger is exercised."""


def app_process(url: str, tmp_path: Path, budget: float) -> SimpleNamespace:
    """What one app process holds: its settings and its own Ledger (engine + pool) on the shared database."""
    env = {"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": "http://127.0.0.1:9",
           "PLAYGROUND_BUDGET_USD": f"{budget:.4f}"}
    return SimpleNamespace(settings=load_settings(env=env), ledger=Ledger(url), worker=_Worker())


# ------------------------------------------------------------------ the method itself


def test_create_runs_is_all_or_nothing_and_says_the_numbers(ledger: Ledger) -> None:
    ledger.create_run("old", STD_5, 0.30)
    new = [NewRun("a", STD_5, 0.40, group_id="g"), NewRun("b", STD_5, 0.40, group_id="g")]
    refused = ledger.create_runs(new, budget=1.00)
    assert refused.refused and refused.runs == () and refused.spent == pytest.approx(0.30)
    assert refused.cost == pytest.approx(0.80) and ledger.count_runs() == 1   # neither row written
    done = ledger.create_runs(new, budget=1.10)
    assert not done.refused and done.created == (True, True) and [r.run_id for r in done.runs] == ["a", "b"]
    assert done.runs[0].created_at < done.runs[1].created_at                   # the order they were given
    assert ledger.spend(include_drafts=True) == pytest.approx(1.10)


def test_a_repeated_press_is_returned_not_charged_or_refused(ledger: Ledger) -> None:
    first = ledger.create_runs([NewRun("r1", STD_5, 0.9)], budget=1.0)
    again = ledger.create_runs([NewRun("r1", STD_5, 0.9)], budget=1.0)  # a new $0.9 would not fit
    assert first.created == (True,) and again.created == (False,) and not again.refused
    assert again.cost == 0 and again.runs[0].run_id == "r1" and ledger.count_runs() == 1


def test_spent_is_what_the_app_calls_spend_failed_runs_free(ledger: Ledger) -> None:
    ledger.create_run("ok", STD_5, 0.5)
    ledger.create_run("bad", STD_5, 0.5)
    ledger.claim_for_submit("bad", "t")
    ledger.mark_submit_failed("bad", "bad_request", "refused")
    assert ledger.get("bad").state == FAILED
    done = ledger.create_runs([NewRun("n", STD_5, 0.5)], budget=1.0)
    assert done.spent == pytest.approx(ledger.spend(include_drafts=True) - 0.5) == pytest.approx(0.5)
    assert not done.refused


def test_the_same_id_twice_in_one_press_is_refused_in_words(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="same run id"):
        ledger.create_runs([NewRun("x", STD_5, 0.1), NewRun("x", STD_5, 0.1)])


# ------------------------------------------------------------------ the attack: concurrent presses


def test_eight_simultaneous_presses_against_the_cap_accept_exactly_one(
        ledger_url: str, tmp_path: Path) -> None:
    """8 × $0.94 against $1.00 (then against each raised cap): one, and only one, fits each round."""
    procs = [app_process(ledger_url, tmp_path, 1.0) for _ in range(4)]
    try:
        for round_ in range(3):
            cap = 1.0 + round_ * 0.9375
            for p in procs:
                p.settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path),
                                                "PLAYGROUND_BUDGET_USD": f"{cap:.4f}"})
            outcomes = race(8, lambda i, r=round_: playground.submit(
                procs[i % 4], PRO_15, run_id=f"r{r}-{i}"))
            accepted = [o for o in outcomes if o.created]
            refused = [o for o in outcomes if o.refused]
            assert len(accepted) == 1 and len(refused) == 7, (round_, [o.refused for o in outcomes])
            spend = procs[0].ledger.spend(include_drafts=True)
            assert spend <= cap + 1e-9, (round_, spend, cap)
            assert "budget is left" in refused[0].refused and f"${cap:.2f} budget" in refused[0].refused
    finally:
        for p in procs:
            p.ledger.close()


def test_two_simultaneous_grids_never_pass_the_cap_and_are_never_half_written(
        ledger_url: str, tmp_path: Path) -> None:
    """Two 8-cell grids ($2.98 each) against $4.00: one is written whole, the other not at all."""
    a, b = app_process(ledger_url, tmp_path, 4.0), app_process(ledger_url, tmp_path, 4.0)
    try:
        plan = compare.expand(compare.GridSpec(prompts=("first prompt", "second prompt"), durations=(5, 10)),
                              a.settings.prices)
        assert plan.total == pytest.approx(2.979) and len(plan.submittable) == 8
        for round_ in range(3):
            cap = 4.0 + round_ * plan.total
            for p in (a, b):
                p.settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path),
                                                "PLAYGROUND_BUDGET_USD": f"{cap:.4f}"})
            groups = [f"g{round_}-{i}" for i in range(2)]
            results = race(2, lambda i, g=groups: compare.submit_grid((a, b)[i], plan, g[i]))
            written = [len(a.ledger.group(g)) for g in groups]
            assert sorted(written) == [0, 8], written                  # all or nothing, one grid only
            assert sum(r.ok for r in results) == 1
            loser = next(r for r in results if not r.ok)
            assert loser.refused.startswith("Refused: this grid costs ≈ $2.98") and loser.runs == ()
            assert a.ledger.spend(include_drafts=True) <= cap + 1e-9
    finally:
        a.ledger.close()
        b.ledger.close()


def test_many_small_presses_from_two_processes_stop_exactly_at_the_cap(
        ledger_url: str, tmp_path: Path) -> None:
    """24 × $0.184 from two processes against $1.00: as many as fit (5 = $0.92), never a sixth."""
    a, b = app_process(ledger_url, tmp_path, 1.0), app_process(ledger_url, tmp_path, 1.0)
    try:
        outcomes = race(24, lambda i: playground.submit((a, b)[i % 2], STD_5, run_id=f"s{i}"))
        assert sum(o.created for o in outcomes) == 5
        assert a.ledger.spend(include_drafts=True) == pytest.approx(5 * 0.184)
    finally:
        a.ledger.close()
        b.ledger.close()
