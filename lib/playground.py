"""The use cases the pages call: submit, compare a pair, upload a frame, re-run, promote, recover.

Why a layer of its own: every decision a page makes (is this request valid, is it within the budget, has
this press already been submitted, what does a failure mean for the user) lives here, in plain Python
that is tested without a browser. Pages only draw what these functions return. Nothing here calls the
gateway for a task's status: the worker does that; a submit only writes a draft run and wakes the worker.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, TypedDict

from lib import money, owners
from lib.contract import (
    DURATIONS,
    LATEST,
    LATEST_ONLY_WORDS,
    Problem,
    VideoRequest,
    check_image,
    estimate_cost,
    i2v_limit,
    image_info,
    validate,
)
from lib.ledger import FAILED, IN_PROGRESS, QUEUED, TASK_GONE_CODE, TIMED_OUT, UNKNOWN, Creation, NewRun
from lib.owners import NOBODY, Actor

if TYPE_CHECKING:
    from lib.ledger import Run
    from lib.services import Services

log = logging.getLogger(__name__)

_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_\-:.]{4,128}$")


class OwnerFields(TypedDict):
    """NewRun's and Ledger.recover's owner keywords, typed so `**` of them is checked."""

    owner: str | None
    owner_name: str | None


@dataclass(frozen=True)
class SubmitOutcome:
    """What happened to one press of a submit button, in terms a page can draw."""

    run: Run | None = None
    created: bool = False
    problems: list[Problem] = field(default_factory=list)
    refused: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def ok(self) -> bool:
        """A run exists for this press (new, or the same run_id pressed twice)."""
        return self.run is not None and self.refused is None and not self.errors


def estimate(services: Services, request: VideoRequest) -> float:
    """Estimated USD of one run with the configured prices (never what the gateway bills)."""
    return estimate_cost(request, services.settings.prices)


def budget_left(services: Services) -> float | None:
    """USD left under PLAYGROUND_BUDGET_USD (estimated spend), or None when no budget is set."""
    budget = services.settings.budget_usd
    if budget is None:
        return None
    return budget - services.ledger.spend(include_drafts=True)


def refusal_words(what: str, cost: float, spent: float, budget: float) -> str:
    """A budget refusal with the numbers: the estimate, what is left, what was spent, what to do."""
    left = max(0.0, budget - spent)
    return (
        f"{what} is estimated at {money.usd(cost)}, but only {money.usd(left)} of the "
        f"{money.usd(budget)} budget is left "
        f"({money.usd(spent)} already spent, estimated). Choose std or a shorter duration, or raise "
        "PLAYGROUND_BUDGET_USD."
    )


def signing_in(services: Services) -> bool:
    """Whether sign-in is configured (a bare services object without settings, as benches and lib tests
    build, is the single-user default)."""
    return bool(getattr(getattr(services, "settings", None), "sign_in", False))


def new_runs_owner(services: Services, actor: Actor) -> OwnerFields:
    """NewRun's owner fields for `actor`: none without sign-in (every run is the team's)."""
    if not signing_in(services):
        return {"owner": None, "owner_name": None}
    return {"owner": actor.owner, "owner_name": actor.name}


def create_capped(services: Services, new: list[NewRun]) -> Creation:
    """Ledger.create_runs with the team's cap and, with sign-in, the owner's own cap, in one transaction."""
    settings = services.settings
    user_cap = settings.user_budget_usd if settings.sign_in and new and new[0].owner else None
    return services.ledger.create_runs(new, budget=settings.budget_usd, user_budget=user_cap)


def capped_words(what: str, done: Creation) -> str:
    """The refusal of whichever cap refused, with its numbers."""
    if done.refused_by == "user" and done.user_budget is not None:
        return owners.user_refusal_words(what, done.cost, done.user_spent, done.user_budget)
    assert done.budget is not None
    return refusal_words(what, done.cost, done.spent, done.budget)


_VERBS = {"promote": "promote", "extend": "extend", "rerun": "make another take of",
          "compare": "make the other mode's version of"}


def _parent_refusal(services: Services, parent_id: str | None, source: str, actor: Actor) -> str | None:
    """Why `actor` may not build a new run on `parent_id` (another user's run), or None."""
    sign_in = signing_in(services)
    if sign_in and not actor.signed_in:
        return owners.SIGN_IN_FIRST
    if parent_id is None:
        return None
    parent = services.ledger.get(parent_id)
    return owners.refusal(sign_in, parent, actor, _VERBS.get(source, "build on")) if parent else None


def _already(services: Services, run_id: str) -> SubmitOutcome | None:
    """The same run_id pressed twice (double click, a press while the first is on its way): a no-op."""
    existing = services.ledger.get(run_id)
    if existing is None:
        return None
    log.info("run %s already exists: press ignored", run_id)
    return SubmitOutcome(run=existing, created=False)


def contract_problems(services: Services, request: VideoRequest) -> list[Problem]:
    """A request holding the newest fields while this app sends v1 (a card of a run made under latest):
    refused in words rather than sent, since under v1 nothing outside the seed page may leave."""
    if services.settings.contract == LATEST or not (request.contract == LATEST or request.uses_latest_fields):
        return []
    return [Problem("contract", f"This run was {LATEST_ONLY_WORDS}, so it is not sent from here — set "
                                "TOAPIS_CONTRACT=latest, or re-run it in Compose without its newest fields.")]


def submit(
    services: Services,
    request: VideoRequest,
    *,
    run_id: str,
    group_id: str | None = None,
    parent_id: str | None = None,
    label: str | None = None,
    source: str = "compose",
    actor: Actor = NOBODY,
) -> SubmitOutcome:
    """Validate, then check the budget and write the draft run in one ledger transaction (so concurrent
    presses cannot together pass the cap), wake the worker. Nothing is sent from here.

    With sign-in, `actor` owns the new run, and a run built on a parent (promote, extend, another take,
    the other mode) is refused unless the parent is theirs or the team's (lib/owners.py)."""
    if (words := _parent_refusal(services, parent_id, source, actor)) is not None:
        return SubmitOutcome(refused=words)
    done = _already(services, run_id)
    if done is not None:
        return done
    problems = validate(request) + contract_problems(services, request)
    if any(p.level == "error" for p in problems):
        return SubmitOutcome(problems=problems)
    new = NewRun(run_id, request, estimate(services, request), group_id=group_id, parent_id=parent_id,
                 label=label, source=source, **new_runs_owner(services, actor))
    made = create_capped(services, [new])
    if made.refused:
        return SubmitOutcome(problems=problems, refused=capped_words("This run", made))
    services.worker.wake()
    return SubmitOutcome(run=made.runs[0], created=made.created[0], problems=problems)


def pair_requests(request: VideoRequest) -> tuple[VideoRequest, VideoRequest]:
    """The std and the pro version of one request: same prompt, frames, duration and aspect."""
    return request.replace(mode="std"), request.replace(mode="pro")


def submit_pair(
    services: Services, request: VideoRequest, *, run_ids: tuple[str, str], group_id: str,
    actor: Actor = NOBODY,
) -> list[SubmitOutcome]:
    """"Compare std vs pro": both runs in one group, or neither (validation and budget cover the pair)."""
    if (words := _parent_refusal(services, None, "compare", actor)) is not None:
        return [SubmitOutcome(refused=words)]
    existing = [_already(services, rid) for rid in run_ids]
    if all(existing):
        return [e for e in existing if e is not None]
    std, pro = pair_requests(request)
    problems = validate(std) + [p for p in validate(pro) if p.field != "mode"]
    problems += contract_problems(services, std)
    if any(p.level == "error" for p in problems):
        return [SubmitOutcome(problems=problems)]
    who = new_runs_owner(services, actor)
    new = [NewRun(rid, req, estimate(services, req), group_id=group_id, label=req.mode, source="compare",
                  **who) for rid, req in zip(run_ids, (std, pro), strict=True)]
    done = create_capped(services, new)
    if done.refused:
        return [SubmitOutcome(problems=problems, refused=capped_words("This comparison", done))]
    services.worker.wake()
    return [SubmitOutcome(run=run, created=created, problems=problems)
            for run, created in zip(done.runs, done.created, strict=True)]


_IMAGE_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


def upload_frame(
    services: Services, data: bytes, filename: str, field: str = "first_frame"
) -> tuple[str | None, list[Problem]]:
    """Check an image locally, then upload it once (same bytes → the URL we already have)."""
    problems = check_image(data, field)
    if any(p.level == "error" for p in problems):
        return None, problems
    sha = hashlib.sha256(data).hexdigest()
    known = services.ledger.find_upload(sha)
    if known and known.get("url"):
        return str(known["url"]), problems
    from lib.gateway import GatewayError, user_message

    name = PurePath(filename or "frame").name or "frame"
    try:  # the type comes from the bytes (the client sniffs them), never from the file's name
        url = services.client.upload_image(data, name, None)
    except GatewayError as err:
        return None, [*problems, Problem(field, f"The upload failed: {user_message(err)}")]
    suffix = _IMAGE_SUFFIX.get(image_info(data)[0] or "", ".img")
    try:
        local = services.archive.store_upload(data, suffix)
    except Exception as exc:  # noqa: BLE001 - a preview copy is optional; the upload itself worked
        log.warning("could not keep a local copy of an upload: %s", exc)
        local = None
    services.ledger.add_upload(sha, url, name, str(local) if local else None)
    return url, problems


def rerun(services: Services, run: Run, *, actor: Actor = NOBODY) -> VideoRequest:
    """Every setting of `run`, images included, ready to fill the Compose form again. Another user's
    run is refused (owners.NotYours): its share link's "Re-run this config" is the way to copy it."""
    owners.check(signing_in(services), run, actor, "re-run")
    return VideoRequest.from_dict(run.params)


def extend_duration(request: VideoRequest) -> int | None:
    """The next longer duration the frames allow ("Extend to 10 s"), or None when there is none."""
    current = request.effective_duration
    limit = (i2v_limit(request.contract) or max(DURATIONS)) if request.image_urls else max(DURATIONS)
    longer = [d for d in DURATIONS if current < d <= limit]
    return longer[0] if longer else None


def promote_request(request: VideoRequest) -> VideoRequest:
    """What Promote sends: the same request as pro 1080p, the same duration (a longer one is Extend's)."""
    return request.replace(mode="pro", duration=request.effective_duration)


def extend_request(request: VideoRequest) -> VideoRequest | None:
    """What Extend sends: the same request in the same mode, one duration step longer (a new video of the
    same prompt and frames, not a continuation of this one); None when no longer duration is allowed."""
    longer = extend_duration(request)
    return None if longer is None else request.replace(mode=request.effective_mode, duration=longer)


def promote(services: Services, run: Run, *, run_id: str | None = None,
            actor: Actor = NOBODY) -> SubmitOutcome:
    """Draft → final: the same prompt, frames and duration as pro 1080p, linked as a child.

    The duration is kept: a std 5 s draft becomes a pro 5 s run at the price on the button, never a
    longer (dearer) one in passing. Extend is the separate, priced action for a longer video.
    """
    target = promote_request(VideoRequest.from_dict(run.params))
    return submit(
        services,
        target,
        run_id=run_id or services.ledger.new_id(),
        parent_id=run.run_id,
        label="promoted",
        source="promote",
        actor=actor,
    )


def extend(services: Services, run: Run, *, run_id: str | None = None,
           actor: Actor = NOBODY) -> SubmitOutcome:
    """The same prompt and frames, same mode, one duration step longer, linked to `run` as a child."""
    if (words := _parent_refusal(services, run.run_id, "extend", actor)) is not None:
        return SubmitOutcome(refused=words)
    target = extend_request(VideoRequest.from_dict(run.params))
    if target is None:
        raise ValueError("This run is already as long as its settings allow: there is nothing to extend.")
    return submit(
        services,
        target,
        run_id=run_id or services.ledger.new_id(),
        parent_id=run.run_id,
        label=f"extended to {target.effective_duration} s",
        source="extend",
        actor=actor,
    )


def another_take(services: Services, run: Run, *, run_id: str | None = None,
                 actor: Actor = NOBODY) -> SubmitOutcome:
    """The same settings again as a new run: a deliberate variation (the model is not deterministic).

    Kept in the run's group with its label, as a child of it, so a grid shows the newest take of a cell.
    """
    return submit(
        services,
        VideoRequest.from_dict(run.params),
        run_id=run_id or services.ledger.new_id(),
        group_id=run.group_id,
        parent_id=run.run_id,
        label=run.label,
        source="rerun",
        actor=actor,
    )


NO_SUCH_TASK = ("No task with that id on this gateway. Check that the id was copied whole (from the "
                "gateway's response or dashboard) and made with this gateway's account; nothing was saved.")


def confirm_task(services: Services, task_id: str) -> None:
    """Ask the gateway about `task_id` once; ValueError in words unless it answers with the task.

    Why before writing: a recovered run is saved only for a task that exists, so a mistyped id leaves
    no fake "(prompt unknown)" run behind in the cards, the history and the stats."""
    from lib.gateway import GatewayError, NotFound, user_message

    try:
        services.client.get_task(task_id)
    except NotFound:
        raise ValueError(NO_SUCH_TASK) from None
    except GatewayError as err:
        raise ValueError(f"{user_message(err)} Nothing was saved; try again.") from None


def recover(services: Services, task_id: str, *, run_id: str | None = None, actor: Actor = NOBODY) -> Run:
    """Follow a task made elsewhere (or attach it to an "unknown" run) once the gateway confirms it
    exists; the worker does the rest. With sign-in the new run is `actor`'s, and attaching a task to
    another user's run is refused (owners.NotYours) before anything is asked or written."""
    sign_in = signing_in(services)
    if sign_in and not actor.signed_in:
        raise owners.NotYours(owners.SIGN_IN_FIRST)
    if run_id is not None and (target := services.ledger.get(run_id)) is not None:
        owners.check(sign_in, target, actor, "recover")
    task_id = (task_id or "").strip()
    if not _TASK_ID_RE.match(task_id):
        raise ValueError(
            "That does not look like a task id (letters, digits, - and _, e.g. task_01KA…) — "
            "copy it from the gateway's response."
        )
    ledger = services.ledger
    known = ledger.get_by_task(task_id)
    if known is not None:
        return known
    confirm_task(services, task_id)
    if run_id is not None:
        run = ledger.get(run_id)
        if run is not None and run.state == UNKNOWN:
            ledger.attach_task(run_id, task_id, next_poll_at=0.0)
            services.worker.wake()
            return ledger.get(run_id) or run
    run = ledger.recover(task_id, None, **new_runs_owner(services, actor))
    services.worker.wake()
    return run


def elapsed_seconds(run: Run, now: float) -> float:
    """Seconds since the press, up to the finish when there is one."""
    end = run.completed_at if run.completed_at else now
    return max(0.0, end - run.created_at)


ETA_MIN_PROGRESS = 10


def eta_seconds(run: Run, now: float) -> float | None:
    """Seconds left, from the progress slope since submit; None until there is a slope to read."""
    if run.state not in (QUEUED, IN_PROGRESS) or not run.submitted_at:
        return None
    progress = max(0, min(100, int(run.progress or 0)))
    if progress < ETA_MIN_PROGRESS or progress >= 100:
        return None  # the first percent after a queue says little about the rate: no wild guesses
    seen = max(run.updated_at, run.submitted_at)
    spent = seen - run.submitted_at
    if spent <= 0:
        return None
    rate = progress / spent
    left = (100 - progress) / rate - max(0.0, now - seen)
    return max(0.0, left)


_EXPLAIN: tuple[tuple[tuple[str, ...], str], ...] = (
    (("content_policy", "policy", "risk", "sensitive", "422"),
     "The gateway refused the prompt or an image under its content policy. Rephrase the prompt "
     "(or use other frames) and try again."),
    # before the network words: "could not download the first frame image" is about the image, even when
    # the gateway's code says it timed out fetching it
    (("download", "image url", "frame image", "image_url", "fetch"),
     "The gateway could not fetch a frame image from its URL. Use a public https address of a JPEG or PNG "
     "(or upload the file instead), then re-run."),
    (("balance", "insufficient", "payment", "402", "quota", "arrears"),
     "The gateway account has too little balance for this run. Top up the account, then re-run."),
    (("rate_limit", "rate limit", "too many", "429"),
     "The gateway's rate limit was hit. Wait a moment and re-run; nothing was submitted twice."),
    (("unauthor", "401", "api key", "authentication"),
     "The gateway rejected the API key. Check TOAPIS_API_KEY and restart the app."),
    (("invalid_request", "bad_request", "400"),
     "The gateway rejected the request as invalid. Check the settings and re-run."),
    (("expired",),
     "The gateway's video link expired before it could be archived. Re-run to get a new video."),
    (("timeout", "unknown", "unavailable", "connection"),
     "The gateway did not answer in time, so we cannot tell whether the task started."),
)


def explain(run: Run) -> str:
    """A failed, unknown or timed-out run's error in words: what happened and what to do next.

    A refused submit (no task id) already carries the worker's words (gateway.user_message); a task that
    failed at the gateway carries the gateway's own short message, which is classified here. A timed-out
    run and a task the gateway forgot carry the worker's words too (they name the deadline and the counts).
    """
    code = (run.error_code or "").lower()
    message = (run.error_message or "").strip()
    if run.state == TIMED_OUT:
        return message or ("Timed out: the gateway did not finish this run in time, so the app stopped "
                           "waiting for it and sent nothing again. It may have been billed; re-run it.")
    if run.state == UNKNOWN and code == TASK_GONE_CODE:
        return message or ("The gateway no longer knows this task, so the video cannot be fetched. It may "
                           "have been billed; re-run it if you still want the video.")
    if run.state == UNKNOWN:
        what = message or (
            "The submit's answer never arrived, so we cannot tell whether the gateway started a task.")
        if "task id" not in what:
            what += " If you know its task id (for example from the gateway's dashboard), recover it by " \
                    "task id; otherwise re-run."
        return what
    if run.state == FAILED and message and (not run.task_id or code == "task_not_found"):
        return message  # the worker's own words (a refused submit, a recovered id the gateway lacks)
    haystack = f"{code} {message.lower()}"
    what = next((text for keys, text in _EXPLAIN if any(k in haystack for k in keys)), None) or (
        "The gateway could not generate this video (an upstream failure). Re-run it; if it keeps "
        "failing, change the prompt or settings."
    )
    return f"{what} (gateway said: {message})" if message else what
