"""lib/compare: grid expansion, forbidden cells, cost totals, budget, labels and restoring a saved group."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from lib import compare
from lib.contract import FIFTEEN_WITH_IMAGES, Prices, VideoRequest, estimate_cost

PRICES = Prices(std=0.04, pro=0.10)
IMG = ("https://example.com/a.jpg",)


def test_default_grid_is_one_prompt_std_vs_pro_at_5s() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("a red fox",)), PRICES)
    assert [c.label for c in plan.cells] == ["std · 5 s", "pro · 5 s"]
    assert [c.request.to_payload() for c in plan.cells] == [
        {"model": "kling-v3", "prompt": "a red fox", "mode": "std", "duration": 5, "aspect_ratio": "16:9"},
        {"model": "kling-v3", "prompt": "a red fox", "mode": "pro", "duration": 5, "aspect_ratio": "16:9"},
    ]
    assert [c.est_cost for c in plan.cells] == [pytest.approx(0.20), pytest.approx(0.50)]
    assert plan.total == pytest.approx(0.70)
    assert plan.ok and not plan.errors


def test_expansion_covers_every_combination_in_display_order() -> None:
    spec = compare.GridSpec(prompts=("p one", "p two"), modes=("pro", "std"), durations=(10, 5),
                            aspects=("1:1",))
    plan = compare.expand(spec, PRICES)
    assert spec.size == len(plan.cells) == 8
    # canonical order: std before pro, 5 before 10, whatever order the widgets gave
    assert [c.label for c in plan.cells] == [
        "P1 · std · 5 s", "P1 · pro · 5 s", "P1 · std · 10 s", "P1 · pro · 10 s",
        "P2 · std · 5 s", "P2 · pro · 5 s", "P2 · std · 10 s", "P2 · pro · 10 s",
    ]
    assert {(c.request.prompt, c.request.mode, c.request.duration) for c in plan.cells} == {
        (p, m, d) for p in ("p one", "p two") for m in ("std", "pro") for d in (5, 10)
    }
    assert all(c.request.aspect_ratio == "1:1" for c in plan.cells)
    assert [c.index for c in plan.cells] == list(range(8))
    assert len({c.key for c in plan.cells}) == 8


def test_several_aspects_appear_in_the_label() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("x",), modes=("std",), aspects=("9:16", "16:9")))
    assert [c.label for c in plan.cells] == ["std · 5 s · 16:9", "std · 5 s · 9:16"]


def test_fifteen_seconds_with_images_is_forbidden_with_the_reason_and_costs_nothing() -> None:
    spec = compare.GridSpec(prompts=("x",), durations=(5, 15), image_urls=IMG)
    plan = compare.expand(spec, PRICES)
    forbidden = plan.forbidden
    assert [c.label for c in forbidden] == ["std · 15 s", "pro · 15 s"]
    assert all(c.forbidden == FIFTEEN_WITH_IMAGES for c in forbidden)
    assert all(not c.submittable and c.est_cost == 0.0 for c in forbidden)
    assert [c.label for c in plan.submittable] == ["std · 5 s", "pro · 5 s"]
    assert plan.total == pytest.approx(5 * 0.04 + 5 * 0.10)
    # every submittable cell carries the frames
    assert all(c.request.image_urls == IMG for c in plan.submittable)
    assert plan.ok


def test_fifteen_seconds_without_images_is_allowed() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("x",), durations=(15,)), PRICES)
    assert not plan.forbidden
    assert plan.total == pytest.approx(15 * 0.04 + 15 * 0.10)


def test_only_forbidden_cells_means_nothing_to_send() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("x",), durations=(15,), image_urls=IMG), PRICES)
    assert plan.total == 0 and not plan.submittable and not plan.ok


def test_total_matches_contract_estimate_for_a_full_grid() -> None:
    spec = compare.GridSpec(prompts=("a", "b", "c", "d"), durations=(5, 10, 15))
    plan = compare.expand(spec, PRICES)
    assert len(plan.cells) == 24
    expected = sum(estimate_cost(c.request, PRICES) for c in plan.cells)
    assert plan.total == pytest.approx(expected)
    assert plan.total == pytest.approx(4 * (5 + 10 + 15) * (0.04 + 0.10))


def test_empty_prompt_variant_blocks_the_grid_and_names_the_variant() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("ok", "  ")), PRICES)
    assert not plan.ok
    fields = {p.field for p in plan.errors}
    assert fields == {"prompt_2"}
    assert all("Prompt 2" in p.message for p in plan.errors)
    assert len(plan.errors) == 1  # the same problem on two cells is reported once


@pytest.mark.parametrize(("spec", "field"), [
    (compare.GridSpec(prompts=()), "prompts"),
    (compare.GridSpec(prompts=("a", "b", "c", "d", "e")), "prompts"),
    (compare.GridSpec(prompts=("a",), modes=()), "modes"),
    (compare.GridSpec(prompts=("a",), durations=()), "durations"),
    (compare.GridSpec(prompts=("a",), aspects=()), "aspects"),
    (compare.GridSpec(prompts=("a", "b", "c"), durations=(5, 10, 15), aspects=("16:9", "1:1", "9:16")),
     "grid"),  # 54 cells
])
def test_spec_problems(spec: compare.GridSpec, field: str) -> None:
    plan = compare.expand(spec, PRICES)
    assert field in {p.field for p in plan.errors}
    assert not plan.ok


def test_max_cells_is_allowed() -> None:
    spec = compare.GridSpec(prompts=("a", "b"), durations=(5, 10, 15), aspects=("16:9", "9:16", "1:1"))
    plan = compare.expand(spec, PRICES)
    assert len(plan.cells) == compare.MAX_CELLS == 2 * 2 * 3 * 3
    assert plan.ok


def test_unknown_mode_is_an_error_not_a_silent_drop() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("a",), modes=("std", "turbo")), PRICES)
    assert [c.request.mode for c in plan.cells] == ["std", "turbo"]
    assert plan.cells[1].forbidden and "turbo" in plan.cells[1].forbidden
    assert plan.total == pytest.approx(0.20)


def test_budget_allows_up_to_the_cap_and_refuses_past_it_with_numbers() -> None:
    assert compare.check_budget(0.70, 0.0, None).ok
    assert compare.check_budget(0.70, 0.30, 1.00).ok
    verdict = compare.check_budget(0.70, 0.50, 1.00)
    assert not verdict.ok
    assert verdict.remaining == pytest.approx(0.50)
    for text in ("$0.70", "$0.50", "$1.00", "$1.20", "$0.20 over"):
        assert text in verdict.message


@dataclass
class FakeRun:
    """Just the Run fields restoring reads (structural, like lib.ledger.Run)."""

    run_id: str
    created_at: float
    params: dict
    label: str | None
    source: str = "compare"
    extra: dict = field(default_factory=dict)


def _runs_for(plan: compare.GridPlan) -> list[FakeRun]:
    """A saved group as the ledger holds it: every cell under its own random id (nothing derived)."""
    return [FakeRun(secrets.token_urlsafe(16), 100.0 + c.index, c.request.to_dict(), c.run_label)
            for c in plan.submittable]


def test_restore_spec_from_a_saved_group_round_trips() -> None:
    spec = compare.GridSpec(prompts=("second is first?", "a", "z"), modes=("pro",), durations=(5, 10),
                            aspects=("9:16",), image_urls=IMG, negative_prompt="blur", watermark=False)
    plan = compare.expand(spec, PRICES)
    runs = _runs_for(plan)
    runs.reverse()  # the ledger's order must not matter
    restored = compare.spec_from_runs(runs)
    assert restored == spec
    assert compare.expand(restored, PRICES).cells == plan.cells


def test_restore_keeps_forbidden_cells_that_were_never_sent() -> None:
    spec = compare.GridSpec(prompts=("x",), durations=(10, 15), image_urls=IMG)
    plan = compare.expand(spec, PRICES)
    runs = _runs_for(plan)
    assert len(runs) == 2
    restored = compare.spec_from_runs(runs)
    # only 10 s was sent, so the restored grid shows 10 s; 15 s never existed in the ledger
    assert restored is not None and restored.durations == (10,)


def test_restore_empty_group_is_none() -> None:
    assert compare.spec_from_runs([]) is None


def test_attach_runs_pairs_cells_and_shows_the_newest_take() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("a", "b")), PRICES)
    runs = _runs_for(plan)
    first = runs[1]
    rerun = FakeRun("rerun-1", 500.0, dict(first.params), first.label, source="rerun")
    views = compare.attach_runs(plan, [*runs, rerun])
    assert [v.cell.label for v in views] == [c.label for c in plan.cells]
    assert views[0].run is runs[0] and views[0].takes == 1
    assert views[1].run is rerun and views[1].takes == 2 and views[1].older == (first,)


def test_attach_runs_leaves_missing_cells_empty() -> None:
    plan = compare.expand(compare.GridSpec(prompts=("x",), durations=(5, 15), image_urls=IMG), PRICES)
    views = compare.attach_runs(plan, _runs_for(plan))
    assert [(v.cell.label, v.run is not None) for v in views] == [
        ("std · 5 s", True), ("pro · 5 s", True), ("std · 15 s", False), ("pro · 15 s", False)]


def test_unlabelled_runs_map_by_prompt() -> None:
    a = VideoRequest("alpha", mode="std", duration=5, aspect_ratio="16:9")
    b = VideoRequest("beta", mode="pro", duration=5, aspect_ratio="16:9")
    runs = [FakeRun("1", 1.0, a.to_dict(), None), FakeRun("2", 2.0, b.to_dict(), None)]
    spec = compare.spec_from_runs(runs)
    assert spec is not None and spec.prompts == ("alpha", "beta") and spec.modes == ("std", "pro")
    keys = {compare.run_key(r, spec) for r in runs}
    assert keys == {(0, "std", 5, "16:9"), (1, "pro", 5, "16:9")}


def test_labels_parse_back() -> None:
    assert compare.variant_from_label("P3 · pro · 10 s") == 2
    assert compare.variant_from_label("std · 5 s") is None
    assert compare.variant_from_label(None) is None


def test_params_round_trip() -> None:
    spec = compare.GridSpec(prompts=("a", "b"), modes=("pro",), durations=(10, 15), aspects=("1:1",),
                            negative_prompt="n", watermark=True)
    assert compare.spec_from_params(compare.spec_to_params(spec)) == spec
    assert compare.spec_from_params({"prompts": ["x"]}) == compare.GridSpec(prompts=("x",))


def test_mode_rows_lay_a_group_out_as_std_and_pro_columns() -> None:
    """The shared grid's layout: std | pro columns, a row per variant × duration × aspect, an earlier
    take on a row of its own, a missing place as None (not a transposed, one-column-per-duration grid)."""
    spec = compare.GridSpec(prompts=("a kite", "a boat"), modes=("std", "pro"), durations=(5, 10))
    runs = _runs_for(compare.expand(spec))
    by_cell = {(r.label, r.params["mode"], r.params["duration"]): r for r in runs}
    dropped = by_cell[("P1", "std", 10)]
    runs.remove(dropped)
    again = by_cell[("P2", "pro", 5)]
    take = FakeRun("take-2", 999.0, again.params, again.label, source="rerun")
    modes, rows = compare.mode_rows([*reversed(runs), take])
    assert modes == ["std", "pro"]
    got = [[(r.label, r.params["duration"], r.run_id == "take-2") if r else None for r in row]
           for row in rows]
    assert got == [
        [("P1", 5, False), ("P1", 5, False)],
        [None, ("P1", 10, False)],
        [("P2", 5, False), ("P2", 5, False)],
        [("P2", 10, False), ("P2", 10, False)],
        [None, ("P2", 5, True)],
    ]
    assert [r.params["mode"] for r in rows[0]] == ["std", "pro"]
    assert compare.mode_rows([]) == ([], [])
