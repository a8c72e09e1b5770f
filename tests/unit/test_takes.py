"""Takes (lib/takes.py): a press of N takes writes N runs of one group, all or none under both caps, and a
repeated press (same ids from the tab's press memory) writes nothing new. On SQLite and on a real
PostgreSQL where the ledger is involved; concurrent presses race on a barrier (tests/unit/test_budget_cap)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from lib import compare, playground, presses, takes
from lib.config import load_settings
from lib.contract import DEFAULT_PRICES, VideoRequest
from lib.ledger import Creation
from tests.unit.test_budget_cap import app_process, race

STD_5 = VideoRequest("a kite over dunes, takes", mode="std", duration=5)   # $0.184 at default prices
EACH = 0.184


@pytest.fixture
def svc(ledger_url: str, tmp_path: Path) -> SimpleNamespace:
    s = app_process(ledger_url, tmp_path, 100.0)
    s.settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path)})  # no cap unless a test sets one
    yield s
    s.ledger.close()


def _capped(s: SimpleNamespace, tmp_path: Path, cap: float) -> None:
    s.settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path), "PLAYGROUND_BUDGET_USD": f"{cap:.4f}"})


# ------------------------------------------------------------------ pure rules


@pytest.mark.parametrize("bad", [0, 5, -1, "3", 2.0, True, None])
def test_a_takes_count_outside_one_to_four_is_refused_in_words(bad: object) -> None:
    problem = takes.count_problem(bad)
    assert problem is not None and problem.field == "takes"
    assert "from 1 to 4" in problem.message and "pick 1, 2, 3 or 4" in problem.message


def test_one_to_four_takes_are_fine_and_priced_per_take() -> None:
    assert all(takes.count_problem(n) is None for n in (1, 2, 3, 4))
    assert takes.price_words(EACH, 1) == "≈ $0.18 (estimate)"
    assert takes.price_words(EACH, 3) == "3 takes × ≈ $0.18 = ≈ $0.55 (estimate)"
    assert takes.generate_label(STD_5, DEFAULT_PRICES, 1) == "Generate · Std 720p · 5 s · ≈ $0.18"
    assert takes.generate_label(STD_5, DEFAULT_PRICES, 3) == "Generate 3 takes · Std 720p · 5 s · ≈ $0.55"
    assert takes.generate_label(STD_5.replace(mode="pro"), DEFAULT_PRICES, 4) == \
        "Generate 4 takes · Pro 1080p · 5 s · ≈ $1.25"


def test_how_many_takes_fit_what_is_left() -> None:
    assert takes.fitting(EACH, 0.5) == 2 and takes.fitting(EACH, 0.1) == 0
    assert takes.fitting(EACH, 0.368) == 2          # exactly two: the cap's own 1e-9 tolerance
    assert takes.fitting(EACH, 99) == 4 and takes.fitting(0.0, 0.0) == 4
    assert takes.fit_words(3, 2) == "Only 2 of the 3 takes fit: choose 2 takes."
    assert takes.fit_words(3, 1, " per cell") == "Only 1 of the 3 takes per cell fits: choose 1 take."
    assert takes.fit_words(2, 0) == "Not even one take fits."


def test_the_per_user_cap_refusal_names_your_budget_and_what_fits() -> None:
    done = Creation(refused=True, cost=0.552, budget=None, user_spent=0.7, user_budget=1.0, refused_by="user")
    words = takes.refusal("These 3 takes are", 3, EACH, done)
    assert words.startswith("These 3 takes are estimated at $0.55 ($0.18 a take), but only $0.30")
    assert "$0.30 of your own $1.00 budget is left" in words and "$0.70 already spent by you" in words
    assert "Only 1 of the 3 takes fits: choose 1 take." in words and "PLAYGROUND_USER_BUDGET_USD" in words


def test_one_take_fingerprints_as_before_and_a_different_count_is_a_new_press() -> None:
    inputs = STD_5.to_dict()
    assert takes.press_inputs(inputs, 1) is inputs and takes.n_ids(1) == 1 and takes.n_ids(3) == 4
    book: dict = {}
    ids = iter(f"id{i}" for i in range(100))
    new = lambda n: (lambda: [next(ids) for _ in range(takes.n_ids(n))])  # noqa: E731
    first = presses.decide(book, "generate", takes.press_inputs(inputs, 3), new_ids=new(3), now=0.0)
    again = presses.decide(book, "generate", takes.press_inputs(inputs, 3), new_ids=new(3), now=0.6)
    other = presses.decide(book, "generate", takes.press_inputs(inputs, 2), new_ids=new(2), now=1.2)
    assert first.kind == presses.NEW and again.kind == presses.SAME and again.ids == first.ids
    assert other.kind == presses.NEW and len(other.ids) == 3 and set(other.ids).isdisjoint(first.ids)


# ------------------------------------------------------------------ Generate with takes, on both backends


def test_n_takes_make_n_runs_of_one_group_in_order(svc: SimpleNamespace) -> None:
    out = takes.submit_takes(svc, STD_5, 3, run_ids=["t1", "t2", "t3"], group_id="g-takes")
    assert out.ok and out.created == (True, True, True) and out.group_id == "g-takes"
    runs = svc.ledger.group("g-takes")
    assert [r.run_id for r in runs] == ["t1", "t2", "t3"] and svc.ledger.count_runs() == 3
    assert all(r.source == "compose" and r.est_cost == pytest.approx(EACH) and r.parent_id is None
               for r in runs)
    assert takes.positions(runs) == {"t1": (1, 3), "t2": (2, 3), "t3": (3, 3)}
    assert takes.badge(runs, runs[1]) == "Take 2 of 3" and takes.pressed(runs) == 3
    # "Another take" of a take stays in the group: the strip's fourth take
    more = playground.another_take(svc, runs[-1], run_id="t4")
    runs = svc.ledger.group("g-takes")
    assert more.created and takes.positions(runs)["t4"] == (4, 4) and takes.pressed(runs) == 3


def test_a_press_repeated_at_human_cadence_makes_exactly_n_runs(svc: SimpleNamespace) -> None:
    """Clicks 0, 150, 750, 1350, 2000 ms apart: each is the same press (sliding window), the same ids, and the
    ledger writes the three takes once: 3 runs, never 6."""
    book: dict = {}
    inputs = takes.press_inputs(STD_5.to_dict(), 3)
    minted: list[str] = []

    def new_ids() -> list[str]:
        minted.extend(svc.ledger.new_id() for _ in range(takes.n_ids(3)))
        return minted[-takes.n_ids(3):]

    results = []
    for at in (0.0, 0.15, 0.75, 1.35, 2.0, 3.95):
        d = presses.decide(book, "generate", inputs, new_ids=new_ids, now=at)
        results.append(takes.submit_takes(svc, STD_5, 3, run_ids=d.ids[1:], group_id=d.ids[0]))
    assert len(minted) == 4 and svc.ledger.count_runs() == 3
    assert results[0].n_created == 3 and all(r.ok and r.n_created == 0 for r in results[1:])


def test_invalid_takes_or_settings_write_nothing(svc: SimpleNamespace) -> None:
    bad = takes.submit_takes(svc, STD_5, 5, run_ids=["a"] * 5, group_id="g")
    assert not bad.ok and bad.problems[0].field == "takes"
    empty = takes.submit_takes(svc, VideoRequest("  "), 2, run_ids=["a", "b"], group_id="g")
    assert not empty.ok and {p.field for p in empty.problems} == {"prompt"}
    assert svc.ledger.count_runs() == 0


def test_the_cap_covers_every_take_at_once_and_says_how_many_fit(svc: SimpleNamespace,
                                                                  tmp_path: Path) -> None:
    _capped(svc, tmp_path, 0.5)
    out = takes.submit_takes(svc, STD_5, 3, run_ids=["a", "b", "c"], group_id="g1")
    assert not out.ok and out.runs == () and svc.ledger.count_runs() == 0          # none of the three
    assert out.refused.startswith("These 3 takes are estimated at $0.55 ($0.18 a take)")
    assert "only $0.50 of the $0.50 budget is left" in out.refused
    assert "Nothing was sent. Only 2 of the 3 takes fit: choose 2 takes." in out.refused
    fits = takes.submit_takes(svc, STD_5, 2, run_ids=["d", "e"], group_id="g2")
    assert fits.ok and fits.n_created == 2 and svc.ledger.spend(include_drafts=True) == pytest.approx(0.368)


def test_concurrent_presses_of_takes_never_pass_the_cap_nor_half_write(ledger_url: str,
                                                                       tmp_path: Path) -> None:
    """Six presses of 3 takes ($0.552) from three processes at once against $1.20: two groups whole, no
    group in part."""
    procs = [app_process(ledger_url, tmp_path, 1.2) for _ in range(3)]
    try:
        outs = race(6, lambda i: takes.submit_takes(
            procs[i % 3], STD_5, 3, run_ids=[f"p{i}-{k}" for k in range(3)], group_id=f"g{i}"))
        sizes = [len(procs[0].ledger.group(f"g{i}")) for i in range(6)]
        assert sorted(sizes) == [0, 0, 0, 0, 3, 3], sizes
        assert sum(o.ok for o in outs) == 2 and procs[0].ledger.spend(include_drafts=True) <= 1.2 + 1e-9
        assert all("takes fit" in o.refused or "Not even one" in o.refused for o in outs if not o.ok)
    finally:
        for p in procs:
            p.ledger.close()


# ------------------------------------------------------------------ a Compare grid with takes


def test_a_grid_with_takes_prices_and_writes_every_take_of_every_cell(svc: SimpleNamespace) -> None:
    plan = compare.expand(compare.GridSpec(prompts=("a lantern on a pier",)), DEFAULT_PRICES, takes=2)
    one = compare.expand(plan.spec, DEFAULT_PRICES)
    assert plan.runs == 4 and plan.total == pytest.approx(2 * one.total) and plan.per_take == one.total
    ids = [f"c{i}" for i in range(4)]
    done = compare.submit_grid(svc, plan, "grid-1", run_ids=ids)
    assert done.ok and done.created == 4
    runs = svc.ledger.group("grid-1")
    views = compare.attach_runs(plan, runs)
    assert [v.takes for v in views] == [2, 2] and [v.cell.request.mode for v in views] == ["std", "pro"]
    assert {r.run_id: r.label for r in runs} == {"c0": "std", "c1": "std", "c2": "pro", "c3": "pro"}
    assert takes.positions(runs) == {"c0": (1, 2), "c1": (2, 2), "c2": (1, 2), "c3": (2, 2)}
    assert takes.pressed(runs) == 2
    again = compare.submit_grid(svc, plan, "grid-1", run_ids=ids)        # the same press: nothing new
    assert again.created == 0 and svc.ledger.count_runs() == 4
    with pytest.raises(ValueError, match="4 runs need 4 run ids"):
        compare.submit_grid(svc, plan, "grid-2", run_ids=ids[:2])


def test_a_grid_with_takes_over_the_cap_is_refused_whole_with_what_fits(svc: SimpleNamespace,
                                                                         tmp_path: Path) -> None:
    plan = compare.expand(compare.GridSpec(prompts=("a lantern on a pier",)), DEFAULT_PRICES, takes=3)
    _capped(svc, tmp_path, 1.0)                                   # one take of std+pro is $0.49
    verdict = compare.check_budget(plan.total, 0.0, 1.0, takes=3)
    assert not verdict.ok and "with 3 takes per cell" in verdict.message
    assert "Only 2 of the 3 takes per cell fit: choose 2 takes." in verdict.message
    done = compare.submit_grid(svc, plan, "grid-x", run_ids=[f"x{i}" for i in range(6)])
    assert not done.ok and svc.ledger.count_runs() == 0
    assert "Only 2 of the 3 takes per cell fit" in done.refused


def test_a_bad_takes_count_blocks_the_grid_in_words() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("x",)), DEFAULT_PRICES, takes=9)
    assert not plan.ok and plan.takes == 1 and any(p.field == "takes" for p in plan.errors)


def test_a_pair_has_no_takes_badge(svc: SimpleNamespace) -> None:
    playground.submit_pair(svc, STD_5, run_ids=("s", "p"), group_id="pair")
    runs = svc.ledger.group("pair")
    assert [takes.badge(runs, r) for r in runs] == [None, None] and takes.pressed(runs) == 1


def test_the_per_user_cap_covers_every_take_of_a_press(ledger_url: str, tmp_path: Path) -> None:
    """With sign-in, Alice's own $0.50 cap: 3 takes ($0.55) are refused whole in her words, 2 fit; Bob's
    spend is his own; a signed-out press is refused before anything is checked."""
    from tests.unit.test_owners import ALICE, BOB, process

    s = process(ledger_url, tmp_path, user=0.5)
    try:
        out = takes.submit_takes(s, STD_5, 3, run_ids=["a1", "a2", "a3"], group_id="ga", actor=ALICE)
        assert not out.ok and s.ledger.count_runs() == 0
        assert "of your own $0.50 budget is left" in out.refused
        assert "Only 2 of the 3 takes fit" in out.refused
        two = takes.submit_takes(s, STD_5, 2, run_ids=["a4", "a5"], group_id="gb", actor=ALICE)
        assert two.ok and {r.owner for r in two.runs} == {"alice"}
        bob = takes.submit_takes(s, STD_5, 2, run_ids=["b1", "b2"], group_id="gc", actor=BOB)
        assert bob.ok and s.ledger.count_runs() == 4
        nobody = takes.submit_takes(s, STD_5, 2, run_ids=["n1", "n2"], group_id="gd")
        assert not nobody.ok and nobody.refused and s.ledger.count_runs() == 4
    finally:
        s.ledger.close()


def test_a_repeat_handled_late_by_a_loaded_server_is_still_the_same_press() -> None:
    """Measured in Chromium at load 71: a repeat click sent 0.8 s after the first was handled 9 s later.
    The window counts from when the press was written and drawn (presses.touch), not from its start."""
    book: dict = {}
    inputs = takes.press_inputs(STD_5.to_dict(), 3)
    ids = iter(f"id{i}" for i in range(100))
    new = lambda: [next(ids) for _ in range(takes.n_ids(3))]  # noqa: E731
    first = presses.decide(book, "generate", inputs, new_ids=new, now=0.0)
    presses.touch(book, "generate", first.ids, now=8.9)          # written and drawn at last
    late = presses.decide(book, "generate", inputs, new_ids=new, now=9.0)
    assert late.kind == presses.SAME and late.ids == first.ids
    presses.touch(book, "generate", ("other",), now=50.0)         # another press's ids: left alone
    after = presses.decide(book, "generate", inputs, new_ids=new, now=12.5)
    assert after.kind == presses.NEW_TAKE and after.ids != first.ids   # 3.5 s after the result: a new take
