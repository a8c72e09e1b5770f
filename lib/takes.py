"""Takes: one setting sent 1–4 times in one press, each take its own run and its own charge.

Why its own module: kling-v3 has no seed, so one sample of a setting says little; people press Generate
(or a Compare cell) several times and judge the set. Doing that as one press keeps the rules that hold
for any spend: the price shown counts every take, the budget cap covers all takes at once (all or
nothing, in the ledger's one transaction) and a repeated click gives back the same run ids, so N takes
are N runs however often the button is hit.

How takes are linked, with no new column: the takes of one press share a `group_id` (Compose makes one
per press of more than one take; a Compare grid already has one), and within a group the takes of one
setting are the runs of the same Compare cell (lib.compare.run_key: prompt variant, mode, duration,
aspect), in the order they were written. "Another take" on a run of a group stays in that group, so it
becomes the next take of the same strip.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lib import money, spend_labels
from lib.contract import Prices, Problem, VideoRequest, estimate_cost, validate

if TYPE_CHECKING:
    from lib.compare import RunLike
    from lib.ledger import Creation, Run
    from lib.owners import Actor
    from lib.services import Services

MIN_TAKES, MAX_TAKES = 1, 4
CHOICES: tuple[int, ...] = tuple(range(MIN_TAKES, MAX_TAKES + 1))
HELP = ("How many times to send these same settings. The model has no seed, so each take is a different "
        "video; each is its own run and its own charge, shown side by side with one play control.")


def count_problem(n: object) -> Problem | None:
    """Words for a takes count outside 1–4 (a hand-edited URL or session value), before any spend."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_TAKES <= n <= MAX_TAKES:
        return Problem("takes", f"Takes must be a whole number from {MIN_TAKES} to {MAX_TAKES} (got "
                                f"{str(n)[:20]!r}); pick 1, 2, 3 or 4 takes.")
    return None


def plural(n: int, word: str = "take") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def total(cost_each: float, n: int) -> float:
    """The estimate of n takes of one setting (each take is billed as its own run)."""
    return round(cost_each * n, 6)


def price_words(cost_each: float, n: int) -> str:
    """'≈ $0.18 (estimate)' for one take, '3 takes × ≈ $0.18 = ≈ $0.55 (estimate)' for several."""
    if n <= 1:
        return money.estimate(cost_each)
    return f"{plural(n)} × {money.approx(cost_each)} = {money.estimate(total(cost_each, n))}"


def fitting(cost_each: float, left: float) -> int:
    """How many takes (0–MAX_TAKES) of `cost_each` fit in `left` dollars (estimates, as the cap counts)."""
    if cost_each <= 0:
        return MAX_TAKES
    return max(0, min(MAX_TAKES, math.floor((left + 1e-9) / cost_each)))


def fit_words(n: int, fits: int, per: str = "") -> str:
    """'Only 2 of the 3 takes fit' / 'not even one take fits': what the budget allows, and what to pick."""
    if fits <= 0:
        return f"Not even one take{per} fits."
    return f"Only {fits} of the {plural(n)}{per} fit{'s' if fits == 1 else ''}: choose {plural(fits)}."


def refusal(subject: str, n: int, cost_each: float, done: Creation, per: str = "") -> str:
    """A cap's refusal of a press of `n` takes ("These 3 takes are …"): the numbers of whichever cap
    refused and how many takes would fit."""
    if done.refused_by == "user" and done.user_budget is not None:
        left, cap, spent_by = done.user_budget - done.user_spent, done.user_budget, " by you"
        whose, fix = "your own ", "ask the playground's owner to raise PLAYGROUND_USER_BUDGET_USD"
        spent = done.user_spent
    else:
        assert done.budget is not None
        left, cap, spent_by, whose, spent = done.budget - done.spent, done.budget, "", "the ", done.spent
        fix = "raise PLAYGROUND_BUDGET_USD"
    left = max(0.0, left)
    return (f"{subject} estimated at {money.usd(done.cost)} "
            f"({money.usd(cost_each)} a take{per}), but only {money.usd(left)} of {whose}{money.usd(cap)} "
            f"budget is left ({money.usd(spent)} already spent{spent_by}, estimated). "
            f"Nothing was sent. {fit_words(n, fitting(cost_each, left), per)} Or choose std or a shorter "
            f"duration, or {fix}.")


def press_inputs(inputs: dict, n: int) -> dict:
    """What a press of `n` takes is judged on: the settings plus the count (one take: the settings as
    before, so one take fingerprints exactly as a plain Generate always did)."""
    return inputs if n == 1 else {**inputs, "takes": n}


def n_ids(n: int) -> int:
    """Ids one Generate press needs: one run, or a group id plus one per take."""
    return 1 if n == 1 else n + 1


@dataclass(frozen=True)
class TakesOutcome:
    """What one press of Generate with takes did: every take's run (new or found), or why none."""

    runs: tuple[Run, ...] = ()
    created: tuple[bool, ...] = ()
    group_id: str | None = None
    problems: list[Problem] = field(default_factory=list)
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.runs) and self.refused is None and not any(p.level == "error" for p in self.problems)

    @property
    def n_created(self) -> int:
        return sum(self.created)


def submit_takes(services: Services, request: VideoRequest, n: int, *, run_ids: Sequence[str],
                 group_id: str, actor: Actor | None = None) -> TakesOutcome:
    """Write `n` draft runs of `request` as one take group, all or none under the caps; wake the worker.

    `run_ids` (n of them) come from the tab's press memory: a repeated press hands back the same ids and
    the ledger writes nothing new. Validation and both budget caps cover every take at once."""
    from lib import playground
    from lib.ledger import NewRun
    from lib.owners import NOBODY

    actor = actor or NOBODY
    if (problem := count_problem(n)) is not None:
        return TakesOutcome(problems=[problem])
    if len(run_ids) != n:
        raise ValueError(f"{n} takes need {n} run ids, got {len(run_ids)}")
    if playground.signing_in(services) and not actor.signed_in:
        from lib.owners import SIGN_IN_FIRST

        return TakesOutcome(refused=SIGN_IN_FIRST)
    existing = [services.ledger.get(rid) for rid in run_ids]
    if all(existing):  # the same press again: nothing to check, nothing to write
        return TakesOutcome(runs=tuple(r for r in existing if r is not None), created=(False,) * n,
                            group_id=group_id)
    problems = validate(request) + playground.contract_problems(services, request)
    if any(p.level == "error" for p in problems):
        return TakesOutcome(problems=problems)
    each = playground.estimate(services, request)
    who = playground.new_runs_owner(services, actor)
    new = [NewRun(rid, request, each, group_id=group_id, source="compose", **who) for rid in run_ids]
    done = playground.create_capped(services, new)
    if done.refused:
        return TakesOutcome(problems=problems, refused=refusal(f"These {plural(n)} are", n, each, done))
    services.worker.wake()
    return TakesOutcome(runs=done.runs, created=done.created, group_id=group_id, problems=problems)


# ------------------------------------------------------------------ takes of a group


def strips(runs: Sequence[RunLike]) -> list[list[RunLike]]:
    """A group's runs as take strips: one list per setting (Compare cell), takes in the order written,
    strips in the order their first take was written."""
    from lib import compare

    ordered = sorted(runs, key=lambda r: (r.created_at, r.run_id))
    spec = compare.spec_from_runs(ordered)
    if spec is None:
        return []
    by_key: dict[tuple, list[RunLike]] = {}
    for run in ordered:
        by_key.setdefault(compare.run_key(run, spec), []).append(run)
    return list(by_key.values())


def positions(runs: Sequence[RunLike]) -> dict[str, tuple[int, int]]:
    """run_id -> (take number from 1, takes of its setting) for every run of a group."""
    return {r.run_id: (i, len(strip)) for strip in strips(runs) for i, r in enumerate(strip, start=1)}


def words(i: int, n: int) -> str:
    """'Take 2 of 3'."""
    return f"Take {i} of {n}"


def pressed(runs: Sequence[RunLike], parent_of: dict[str, str | None] | None = None) -> int:
    """Takes per setting of the press that made a group (its runs without a parent; "Another take" runs
    have one): what "Re-run this grid" and a grid's form start from. 1 for an empty or foreign group."""
    parents = parent_of or {r.run_id: getattr(r, "parent_id", None) for r in runs}
    firsts = [len([r for r in strip if not parents.get(r.run_id)]) for strip in strips(runs)]
    return max(MIN_TAKES, min(MAX_TAKES, max(firsts, default=1)))


def badge(ledger_group: Sequence[Run], run: Run) -> str | None:
    """'Take 2 of 3' for a run whose setting has several takes in its group; None for a lone run."""
    i, n = positions(ledger_group).get(run.run_id, (1, 1))
    return words(i, n) if n > 1 else None


def generate_label(request: VideoRequest, prices: Prices, n: int) -> str:
    """'Generate · Std 720p · 5 s · ≈ $0.18' for one take; 'Generate 3 takes · Std 720p · 5 s · ≈ $0.55'
    for several: the button names what it makes and what every take together costs."""
    if n == 1:
        return spend_labels.priced("Generate", request, prices)
    verb = f"Generate {plural(n)}"
    try:
        each = estimate_cost(request, prices)
    except ValueError:
        return f"{verb} · {spend_labels.what(request)}"
    sound = spend_labels.sound_part([request] * n, prices)
    made = f"{spend_labels.quality(request)} · {request.effective_duration} s" if sound else \
        spend_labels.what(request)
    return f"{verb} · {made} · {money.approx(total(each, n))}{sound}"
