"""The settings grid: one model across prompt variants × modes × durations × aspects, priced before sending.

Pure and local (no streamlit, no I/O; only submit_grid writes, through the ledger), so every decision
the Compare page shows — which cells exist, which the gateway forbids and why, what each costs, whether
the budget allows it, how a saved group maps back to its settings — is tested without a browser.
Forbidden cells stay in the plan (shown crossed out with the reason) but are never submittable, so
nothing is spent on a request the gateway would refuse.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lib import money
from lib import takes as takes_rules
from lib.contract import (
    ASPECTS,
    DEFAULT_PRICES,
    LATEST,
    LATEST_DURATIONS,
    LATEST_ONLY_WORDS,
    MAX_PROMPT,
    MAX_REFERENCES,
    MODES,
    V1,
    Prices,
    Problem,
    VideoRequest,
    durations_for,
    estimate_cost,
    forbidden_reason,
    validate,
)
from lib.query import QueryReader, ascii_int, reader

if TYPE_CHECKING:
    from lib.ledger import Run
    from lib.owners import Actor
    from lib.services import Services

MAX_VARIANTS = 4
MAX_CELLS = 36
DEFAULT_MODES: tuple[str, ...] = ("std", "pro")
DEFAULT_DURATIONS: tuple[int, ...] = (5,)
DEFAULT_ASPECTS: tuple[str, ...] = ("16:9",)

_LABEL_VARIANT = re.compile(r"^P(\d+)\b")


@dataclass(frozen=True)
class GridSpec:
    """What the user chose on the Compare page; every dimension keeps the order it is shown in."""

    prompts: tuple[str, ...]
    modes: tuple[str, ...] = DEFAULT_MODES
    durations: tuple[int, ...] = DEFAULT_DURATIONS
    aspects: tuple[str, ...] = DEFAULT_ASPECTS
    image_urls: tuple[str, ...] = ()
    negative_prompt: str | None = None
    watermark: bool | None = None
    audio: bool | None = None          # TOAPIS_CONTRACT=latest: Sound for every cell
    references: tuple[str, ...] = ()   # TOAPIS_CONTRACT=latest: reference images for every cell
    contract: str = V1

    def __post_init__(self) -> None:
        # Widgets hand over lists; tuples keep the spec hashable and comparable. Modes, durations and
        # aspects are put in canonical order so the same choice always gives the same grid.
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "image_urls", tuple(self.image_urls or ()))
        object.__setattr__(self, "modes", _canonical(self.modes, MODES))
        object.__setattr__(self, "references", tuple(self.references or ()))
        object.__setattr__(self, "durations", _canonical(self.durations, LATEST_DURATIONS))
        object.__setattr__(self, "aspects", _canonical(self.aspects, ASPECTS))

    @property
    def size(self) -> int:
        return len(self.prompts) * len(self.modes) * len(self.durations) * len(self.aspects)


def _canonical(values: Iterable[Any], order: Sequence[Any]) -> tuple[Any, ...]:
    """Known values in contract order (deduplicated); unknown ones after, so validation still sees them."""
    seen = list(dict.fromkeys(values or ()))
    known = [v for v in order if v in seen]
    return tuple(known + [v for v in seen if v not in order])


@dataclass(frozen=True)
class Cell:
    """One request of the grid; `forbidden` says in words why it will not be sent, or is None."""

    index: int
    variant: int                 # 0-based prompt variant
    request: VideoRequest
    label: str                   # what the page shows: 'P2 · pro · 10 s'
    run_label: str               # what the ledger keeps: 'P2' (several prompts) or the mode, see run_label()
    est_cost: float              # 0.0 for forbidden cells (never sent, never billed) and unknown aspects
    forbidden: str | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def key(self) -> tuple[int, str, int, str]:
        return (self.variant, self.request.effective_mode, self.request.effective_duration,
                self.request.effective_aspect)

    @property
    def submittable(self) -> bool:
        return self.forbidden is None and not any(p.level == "error" for p in self.problems)


@dataclass(frozen=True)
class GridPlan:
    """The expanded grid: every cell in display order, plus problems that block the whole grid."""

    spec: GridSpec
    cells: tuple[Cell, ...]
    problems: tuple[Problem, ...] = ()
    takes: int = 1               # takes of every cell (lib/takes.py): each one its own run and charge

    @property
    def submittable(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.submittable)

    @property
    def forbidden(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.forbidden is not None)

    @property
    def sendable(self) -> tuple[Cell, ...]:
        """Cells that go out once the grid is valid: everything not crossed out."""
        return tuple(c for c in self.cells if c.forbidden is None)

    @property
    def per_take(self) -> float:
        """Estimated USD of one take of every cell that will be sent (crossed-out cells cost nothing)."""
        return round(sum(c.est_cost for c in self.sendable), 6)

    @property
    def total(self) -> float:
        """Estimated USD of every take of every cell that will be sent."""
        return round(self.per_take * self.takes, 6)

    @property
    def runs(self) -> int:
        """Runs one press sends: every sendable cell, once per take."""
        return len(self.sendable) * self.takes

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.submittable)

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Problems that stop the whole grid: spec-level ones and any cell problem that is not 'forbidden'."""
        cell_errors = [p for c in self.cells if c.forbidden is None for p in c.problems if p.level == "error"]
        seen: dict[tuple[str, str], Problem] = {}
        for p in [*self.problems, *cell_errors]:
            if p.level == "error":
                seen.setdefault((p.field, p.message), p)
        return tuple(seen.values())


def cell_label(variant: int, mode: str, duration: int | str, aspect: str, *, n_variants: int = 1,
               n_aspects: int = 1) -> str:
    """Short, stable label ('P2 · pro · 10 s'); the variant prefix maps a saved group's runs to rows."""
    parts = [f"P{variant + 1}"] if n_variants > 1 else []
    parts += [mode, f"{duration} s"]
    if n_aspects > 1:
        parts.append(aspect)
    return " · ".join(parts)


def run_label(variant: int, mode: str, *, n_variants: int = 1) -> str:
    """The label stored on the run: 'P2' for a prompt variant, else the mode ('std'/'pro').

    Short on purpose: the other views (history, share view) already print mode, duration and aspect next
    to a run's label, and Compose's "Compare std vs pro" pair uses the same 'std'/'pro' labels, so a
    pair and a one-prompt grid restore the same way.
    """
    return f"P{variant + 1}" if n_variants > 1 else mode


def variant_from_label(label: str | None) -> int | None:
    """0-based variant index written by cell_label, or None for a single-prompt grid or a foreign label."""
    m = _LABEL_VARIANT.match(label or "")
    return int(m.group(1)) - 1 if m else None


def _spec_problems(spec: GridSpec) -> list[Problem]:
    problems: list[Problem] = []
    if not spec.prompts:
        problems.append(Problem("prompts", "Add a prompt: the grid needs at least one."))
    if len(spec.prompts) > MAX_VARIANTS:
        problems.append(Problem("prompts", f"{len(spec.prompts)} prompt variants; the grid takes at most "
                                           f"{MAX_VARIANTS} — remove {len(spec.prompts) - MAX_VARIANTS}."))
    for name, values, what in (("modes", spec.modes, "mode"), ("durations", spec.durations, "duration"),
                               ("aspects", spec.aspects, "aspect ratio")):
        if not values:
            problems.append(Problem(name, f"Pick at least one {what}."))
    if spec.size > MAX_CELLS:
        problems.append(Problem("grid", f"The grid has {spec.size} cells; at most {MAX_CELLS} go in one "
                                        "grid — remove a prompt variant, a mode, a duration or an aspect."))
    return problems


def expand(spec: GridSpec, prices: Prices = DEFAULT_PRICES, takes: int = 1) -> GridPlan:
    """Every cell of the grid in display order: variant, then duration, then aspect, then mode (columns);
    `takes` of each (1–4), priced in the plan's total."""
    cells: list[Cell] = []
    n_images = len(spec.image_urls)
    for v, prompt in enumerate(spec.prompts):
        for duration in spec.durations:
            for aspect in spec.aspects:
                for mode in spec.modes:
                    req = VideoRequest(prompt=prompt, mode=mode, duration=duration, aspect_ratio=aspect,
                                       image_urls=spec.image_urls, negative_prompt=spec.negative_prompt,
                                       watermark=spec.watermark, audio=spec.audio,
                                       references=spec.references, contract=spec.contract)
                    reason = forbidden_reason(mode, duration, n_images, spec.contract)
                    problems = tuple(_relabel(p, v, len(spec.prompts)) for p in validate(req))
                    cost = 0.0
                    if reason is None and (req.aspect_ratio in ASPECTS):
                        cost = estimate_cost(req, prices)  # priced even while a prompt is still empty
                    label = cell_label(v, mode, duration, aspect, n_variants=len(spec.prompts),
                                       n_aspects=len(spec.aspects))
                    cells.append(Cell(index=len(cells), variant=v, request=req, label=label,
                                      run_label=run_label(v, mode, n_variants=len(spec.prompts)),
                                      est_cost=cost, forbidden=reason, problems=problems))
    grid_problems = _spec_problems(spec)
    if (bad := takes_rules.count_problem(takes)) is not None:
        grid_problems.append(bad)
        takes = 1
    return GridPlan(spec=spec, cells=tuple(cells), problems=tuple(grid_problems), takes=takes)


def _relabel(p: Problem, variant: int, n_variants: int) -> Problem:
    """Say which prompt variant a prompt problem is about, when there are several."""
    if p.field == "prompt" and n_variants > 1:
        return Problem(f"prompt_{variant + 1}", f"Prompt {variant + 1}: {p.message}", p.level)
    return p


@dataclass(frozen=True)
class BudgetVerdict:
    """Whether the grid fits the budget, with the numbers the refusal shows."""

    ok: bool
    grid_total: float
    spent: float
    budget: float | None
    message: str = ""

    @property
    def remaining(self) -> float | None:
        return None if self.budget is None else round(self.budget - self.spent, 6)


def check_budget(grid_total: float, spent: float, budget: float | None, *, takes: int = 1) -> BudgetVerdict:
    """Refuse the whole grid up front when it would push estimated spend past the budget (with `takes`
    per cell, all of them: the words say how many takes per cell would fit)."""
    if budget is None:
        return BudgetVerdict(True, grid_total, spent, None)
    after = spent + grid_total
    if after <= budget + 1e-9:
        return BudgetVerdict(True, grid_total, spent, budget)
    left = max(0.0, budget - spent)
    with_takes = f" with {takes} takes per cell" if takes > 1 else ""
    message = (f"Refused: this grid{with_takes} costs ≈ {money.usd(grid_total)} (estimate), but "
               f"{money.usd(spent)} of the {money.usd(budget)} budget is already spent, leaving "
               f"{money.usd(left)}; it would end at {money.usd(after)}, {money.usd(after - budget)} over. ")
    if takes > 1:
        fits = takes_rules.fitting(grid_total / takes, left)
        message += takes_rules.fit_words(takes, fits, " per cell") + " "
    message += "Remove cells (a mode, a duration, a prompt) or raise PLAYGROUND_BUDGET_USD."
    return BudgetVerdict(False, grid_total, spent, budget, message)


class RunLike(Protocol):
    """What restoring needs from a ledger Run (kept structural so this module stays free of the ledger)."""

    # read-only members, so a frozen Run (and any object with these attributes) matches
    @property
    def run_id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def params(self) -> dict: ...
    @property
    def label(self) -> str | None: ...
    @property
    def source(self) -> str: ...


def _request_of(run: RunLike) -> VideoRequest:
    return VideoRequest.from_dict(run.params or {})


def spec_from_runs(runs: Sequence[RunLike]) -> GridSpec | None:
    """The settings a saved group was made with, so a reload or 'Re-run this grid' shows the same grid.

    Prompt variants come back in their original order (from the 'P<n>' label prefix, else by first
    appearance); modes/durations/aspects are the set the runs used. Re-runs of a cell add nothing new.
    """
    ordered = sorted(runs, key=lambda r: (r.created_at, r.run_id))
    if not ordered:
        return None
    prompts: dict[int, str] = {}
    unlabeled: list[str] = []
    for run in ordered:
        req = _request_of(run)
        v = variant_from_label(run.label)
        if v is not None:
            prompts.setdefault(v, req.prompt)
        elif req.prompt not in unlabeled:
            unlabeled.append(req.prompt)
    variants = [prompts[k] for k in sorted(prompts)] + [p for p in unlabeled if p not in prompts.values()]
    reqs = [_request_of(r) for r in ordered]
    first = reqs[0]
    return GridSpec(
        prompts=tuple(variants),
        modes=tuple(r.effective_mode for r in reqs),
        durations=tuple(r.effective_duration for r in reqs),
        aspects=tuple(r.effective_aspect for r in reqs),
        image_urls=first.image_urls,
        negative_prompt=first.negative_prompt,
        watermark=first.watermark,
        audio=first.audio,
        references=first.references,
        contract=first.contract,
    )


def run_key(run: RunLike, spec: GridSpec) -> tuple[int, str, int, str]:
    """The cell a run belongs to in `spec` (see Cell.key)."""
    req = _request_of(run)
    v = variant_from_label(run.label)
    if v is None:
        v = spec.prompts.index(req.prompt) if req.prompt in spec.prompts else 0
    return (v, req.effective_mode, req.effective_duration, req.effective_aspect)


@dataclass(frozen=True)
class CellView:
    """A cell of a saved grid with its newest run (re-runs of a cell are newer takes) and how many takes."""

    cell: Cell
    run: Run | None = None
    takes: int = 0
    older: tuple[Any, ...] = field(default=())


def attach_runs(plan: GridPlan, runs: Sequence[Run]) -> list[CellView]:
    """Pair each planned cell with the runs made for it; the newest take is the one shown."""
    by_key: dict[tuple[int, str, int, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.created_at, r.run_id)):
        by_key.setdefault(run_key(run, plan.spec), []).append(run)
    views = []
    for cell in plan.cells:
        takes = by_key.get(cell.key, [])
        views.append(CellView(cell, takes[-1] if takes else None, len(takes), tuple(takes[:-1])))
    return views


def mode_rows(runs: Sequence[RunLike]) -> tuple[list[str], list[list[Any | None]]]:
    """A group's runs laid out like Compare draws them: one column per mode (std, pro), one row per
    prompt variant × duration × aspect (earlier takes of a cell get rows of their own), so a shared grid
    reads the same way as the grid its owner saw. Returns (modes, rows); an empty place is None."""
    spec = spec_from_runs(runs)
    if spec is None:
        return [], []
    modes = [m for m in MODES if m in spec.modes] or list(spec.modes)
    places: dict[tuple[int, int, str, int], dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r.created_at, r.run_id)):
        v, mode, duration, aspect = run_key(run, spec)
        take = 0
        while mode in places.get((v, duration, aspect, take), {}):
            take += 1
        places.setdefault((v, duration, aspect, take), {})[mode] = run
    if not set(modes) >= {m for row in places.values() for m in row}:
        modes += sorted({m for row in places.values() for m in row} - set(modes))
    order = sorted(places, key=lambda k: (k[0], k[3], k[1], ASPECTS.index(k[2]) if k[2] in ASPECTS else 99))
    return modes, [[places[k].get(m) for m in modes] for k in order]


def spec_to_params(spec: GridSpec) -> dict[str, Any]:
    """Flat, JSON-safe settings (for session state / query params of 'Re-run this grid')."""
    return {"prompts": list(spec.prompts), "modes": list(spec.modes), "durations": list(spec.durations),
            "aspects": list(spec.aspects), "image_urls": list(spec.image_urls),
            "negative_prompt": spec.negative_prompt, "watermark": spec.watermark}


def spec_from_params(d: Mapping[str, Any]) -> GridSpec:
    """Inverse of spec_to_params, tolerant of missing keys (defaults apply)."""
    durations = tuple(v for x in d.get("durations") or DEFAULT_DURATIONS if (v := ascii_int(x)) is not None)
    return GridSpec(prompts=tuple(d.get("prompts") or ()), modes=tuple(d.get("modes") or DEFAULT_MODES),
                    durations=durations, aspects=tuple(d.get("aspects") or DEFAULT_ASPECTS),
                    image_urls=tuple(d.get("image_urls") or ()), negative_prompt=d.get("negative_prompt"),
                    watermark=d.get("watermark"))


_QUERY_PROMPTS = ("prompt", "prompt2", "prompt3", "prompt4")
_QUERY_REFERENCES = tuple(f"reference{i}" for i in range(1, MAX_REFERENCES + 1))
QUERY_KEYS = (*_QUERY_PROMPTS, "modes", "durations", "aspect_ratio", "aspects", "negative_prompt",
              "first_frame", "last_frame", "watermark", "sound", *_QUERY_REFERENCES)
MAX_QUERY_URL = 4096


def spec_from_query(q: Mapping[str, Any] | QueryReader, contract: str = V1) -> GridSpec | None:
    """A grid from share-view style query params (history.grid_query): prompt, prompt2…prompt4, modes
    ("std,pro"), durations ("5,10"), aspect_ratio or aspects ("16:9,1:1"), negative_prompt, first_frame,
    last_frame, watermark, and under the latest contract sound and reference1…reference4. None when there
    is no prompt. Read through lib.query: values that are not choices of the grid under `contract` (the
    app's) are left out (pass a QueryReader to collect the notes saying so).
    """
    r = reader(q)
    latest = contract == LATEST
    prompts = tuple(p for i, key in enumerate(_QUERY_PROMPTS)
                    if (p := r.text(key, max_chars=MAX_PROMPT, label=f"prompt {i + 1}" if i else "prompt",
                                    multiline=True)))
    if not prompts:
        return None
    aspects = r.choices("aspects", ASPECTS, label="aspect ratios") if r.has("aspects") else ()
    if not aspects and r.has("aspect_ratio"):
        aspects = tuple(a for a in [r.choice("aspect_ratio", ASPECTS, label="aspect ratio")] if a)
    images = tuple(u for key in ("first_frame", "last_frame")
                   if (u := r.text(key, max_chars=MAX_QUERY_URL, label=key.replace("_", " ") + " URL")))
    negative = r.text("negative_prompt", max_chars=MAX_PROMPT, label="negative prompt", multiline=True)
    newest = r.has("sound") or any(r.has(k) for k in _QUERY_REFERENCES)
    if newest and not latest:
        r.note(f"That grid was {LATEST_ONLY_WORDS}: its Sound and reference images are not filled in. Set "
               "TOAPIS_CONTRACT=latest to re-run it as it was.")
    references = tuple(u for key in _QUERY_REFERENCES if latest and r.has(key)
                       and (u := r.text(key, max_chars=MAX_QUERY_URL, label="reference image URL")))
    return GridSpec(
        prompts=prompts,
        modes=r.choices("modes", MODES, label="modes") or DEFAULT_MODES,
        durations=r.integers("durations", durations_for(contract), label="durations") or DEFAULT_DURATIONS,
        aspects=aspects or DEFAULT_ASPECTS,
        image_urls=images,
        negative_prompt=negative or None,
        watermark=r.flag("watermark", label="watermark setting"),
        audio=(r.flag("sound", label="Sound setting") or None) if latest else None,
        references=references,
        contract=LATEST if latest else V1,
    )


def spec_to_query(spec: GridSpec) -> dict[str, str]:
    """Inverse of spec_from_query: the query a 'Re-run this grid' link carries (history.grid_query)."""
    q = {k: p for k, p in zip(_QUERY_PROMPTS, spec.prompts, strict=False)}
    q["modes"] = ",".join(str(m) for m in spec.modes)
    q["durations"] = ",".join(str(d) for d in spec.durations)
    if len(spec.aspects) == 1:
        q["aspect_ratio"] = str(spec.aspects[0])
    else:
        q["aspects"] = ",".join(str(a) for a in spec.aspects)
    if spec.negative_prompt:
        q["negative_prompt"] = spec.negative_prompt
    q.update({k: u for k, u in zip(("first_frame", "last_frame"), spec.image_urls, strict=False)})
    if spec.watermark is not None:
        q["watermark"] = "true" if spec.watermark else "false"
    if spec.audio:
        q["sound"] = "true"
    q.update(dict(zip(_QUERY_REFERENCES, spec.references, strict=False)))
    return q


@dataclass(frozen=True)
class GridSubmit:
    """What one press of "Submit grid" did: the runs written (or found) and any refusal in words."""

    group_id: str
    runs: tuple[Run, ...] = ()
    created: int = 0
    refused: str | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.problems and bool(self.runs)


def submit_grid(
    services: Services, plan: GridPlan, group_id: str, run_ids: Sequence[str] | None = None, *,
    actor: Actor | None = None,
) -> GridSubmit:
    """Write every submittable cell as a draft run of one group; the worker sends them under its limiter.

    The one function here with side effects, kept beside the plan it executes. All or nothing: the
    plan's problems first, then the budget check and every row in one ledger transaction (so two grids
    pressed at once cannot together pass the cap, and a grid is never half-written). `run_ids` gives
    one id per submittable cell, in order: the page's press memory hands the same ids to a repeated
    press, which then writes nothing new. Each cell's id is random (Ledger.new_id), unrelated to the
    group's or any other run's, so one cell's share link reveals nothing else. Forbidden cells are
    never written.
    """
    from lib import playground  # the pure part of this module must not need the ledger to load
    from lib.ledger import NewRun
    from lib.owners import NOBODY, SIGN_IN_FIRST

    actor = actor or NOBODY
    if playground.signing_in(services) and not actor.signed_in:
        return GridSubmit(group_id, refused=SIGN_IN_FIRST)
    if plan.errors:
        return GridSubmit(group_id, problems=plan.errors)
    cells = [cell for cell in plan.submittable for _ in range(plan.takes)]  # a cell's takes side by side
    if not cells:
        return GridSubmit(group_id, refused="Nothing to send: every cell of this grid is unavailable.")
    ledger = services.ledger
    ids = list(run_ids) if run_ids is not None else [ledger.new_id() for _ in cells]
    if len(ids) != len(cells):
        raise ValueError(f"{len(cells)} runs need {len(cells)} run ids, got {len(ids)}")
    who = playground.new_runs_owner(services, actor)
    new = [NewRun(rid, cell.request, cell.est_cost, group_id=group_id, label=cell.run_label, source="compare",
                  **who) for rid, cell in zip(ids, cells, strict=True)]
    done = playground.create_capped(services, new)
    if done.refused and done.refused_by == "user":
        if plan.takes > 1:
            subject = f"This grid ({plan.takes} takes per cell) is"
            return GridSubmit(group_id, refused=takes_rules.refusal(subject, plan.takes, plan.per_take, done,
                                                                    " per cell"))
        return GridSubmit(group_id, refused=playground.capped_words("This grid", done))
    if done.refused:
        return GridSubmit(group_id, refused=check_budget(done.cost, done.spent, done.budget,
                                                         takes=plan.takes).message)
    services.worker.wake()
    return GridSubmit(group_id, done.runs, done.n_created)


__all__ = [
    "DEFAULT_ASPECTS",
    "DEFAULT_DURATIONS",
    "DEFAULT_MODES",
    "MAX_CELLS",
    "MAX_VARIANTS",
    "BudgetVerdict",
    "Cell",
    "CellView",
    "GridPlan",
    "GridSpec",
    "GridSubmit",
    "attach_runs",
    "cell_label",
    "check_budget",
    "expand",
    "run_key",
    "run_label",
    "spec_from_params",
    "spec_from_query",
    "spec_from_runs",
    "spec_to_params",
    "spec_to_query",
    "submit_grid",
    "variant_from_label",
]
