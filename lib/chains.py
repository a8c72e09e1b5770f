"""Shot chains: continue a finished run from one of its frames, and play or export the shots as one.

Why a module of its own: the rules sit between the archive (the frame is cut from our archived MP4,
through lib/storage.py, so a local folder and an S3 bucket behave alike), the upload path (the frame goes
through playground.upload_frame: the same local checks, the same dedupe by hash), Compose (the next shot
is a normal run with the same settings and that frame) and the ledger (lib/ledger/chains.py links it).
Nothing here spends money: the new shot is sent only when the person presses Generate, under every rule
of a run (image-to-video at most 10 s under v1, image size and shape, budget, one press one charge).

Order of a sequence: a shot made with the frame as its *first* frame follows its parent; one made with
the frame as its *last* frame leads into it, so it comes just before. A sequence is the path from a run
up to its chain's first shot (a run continued twice has two sequences, one per branch).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import frame_fix, frames_cut, history, owners, playground, unfurl
from lib.contract import ASPECTS, RESOLUTION, VideoRequest, check_image, i2v_limit
from lib.ledger import COMPLETED, ChainLink, Run
from lib.ledger.chains import FIRST, LAST, MAX_SHOTS
from lib.owners import NOBODY, Actor
from lib.storage import StoreUnavailable

if TYPE_CHECKING:
    from lib.ledger import Ledger, SequenceRow
    from lib.services import Services

log = logging.getLogger(__name__)

ROLES = (FIRST, LAST)
ROLE_FIELDS = {FIRST: "first_frame", LAST: "last_frame"}
NO_ARCHIVE = ("This run has no archived video yet, so there is no frame to take. Wait until its card shows "
              "the video (it is saved a moment after it finishes), then try again.")
NOT_FINISHED = "Only a finished run has frames to continue from: wait until it completes."
UNREADABLE_VIDEO = ("This run's archived video cannot be read, so no frame can be taken from it. Nothing "
                    "was changed; make another take of it to continue from a new video.")
SEQUENCE_NOT_FOUND = "This link does not match any sequence. Check you copied the whole link."
_CACHE = 16  # cut frames kept per process (a scrubber shows the same few again and again)


class ChainError(ValueError):
    """What stops a continuation or an export, in words for the person (str())."""


@dataclass(frozen=True)
class Prepared:
    """A frame ready for Compose: the next shot's request, the uploaded frame and what to tell."""

    request: VideoRequest
    url: str
    role: str
    frame_time: float
    parent_id: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Exported:
    video_path: str
    poster_path: str | None
    duration: float
    mode: str
    reused: bool


# ------------------------------------------------------------------ frames
def _video_key(services: Services, run: Run) -> str:
    if run.state != COMPLETED:
        raise ChainError(NOT_FINISHED)
    if not run.video_path or not services.archive.exists(run.video_path):
        raise ChainError(NO_ARCHIVE)
    return services.archive.relative(run.video_path)


def check_may_continue(services: Services, run: Run, actor: Actor = NOBODY) -> None:
    """Another user's run is not built on (as Promote and Extend); a signed-out actor neither."""
    words = owners.refusal(playground.signing_in(services), run, actor, "continue")
    if words:
        raise ChainError(words)


@contextlib.contextmanager
def _local(services: Services, key: str) -> Any:
    """The archived file as a local path (an S3 object is downloaded for the `with`)."""
    try:
        with services.archive.storage.local_file(key) as path:
            yield path
    except FileNotFoundError:
        raise ChainError(NO_ARCHIVE) from None
    except StoreUnavailable as exc:
        raise ChainError(f"The archive cannot be read right now ({exc.words}). Try again in a moment; "
                         "nothing was changed.") from None
    except OSError as exc:
        raise ChainError(f"The archived video cannot be opened ({exc.strerror or type(exc).__name__}). "
                         "Try again in a moment; nothing was changed.") from None


_times: OrderedDict[str, list[float]] = OrderedDict()
_cuts: OrderedDict[tuple[str, float], frames_cut.Cut] = OrderedDict()
_cache_lock = threading.Lock()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> Any:
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE:
            cache.popitem(last=False)
    return value


def frame_times(services: Services, run: Run) -> list[float]:
    """Every frame's time in the run's archived video (a key names one file for good: cached)."""
    key = _video_key(services, run)
    with _cache_lock:
        if key in _times:
            return _times[key]
    with _local(services, key) as path:
        try:
            times = frames_cut.frame_times(path)
        except frames_cut.VideoUnreadable:
            raise ChainError(UNREADABLE_VIDEO) from None
    return _remember(_times, key, times)


def cut_frame(services: Services, run: Run, at: float, *, actor: Actor = NOBODY) -> frames_cut.Cut:
    """The frame shown at `at` seconds, at the video's full resolution; a time outside the video, another
    user's run or a run without an archive is refused in words."""
    check_may_continue(services, run, actor)
    times = frame_times(services, run)
    try:
        at = float(at)
    except (TypeError, ValueError):
        raise ChainError("That frame time is not a number: pick a frame on the slider.") from None
    if not (0.0 <= at <= times[-1] + 1e-3):  # NaN fails too
        raise ChainError(f"There is no frame at {at:g} s: this video's frames run from 0 to "
                         f"{times[-1]:.2f} s. Pick a frame on the slider.")
    key = _video_key(services, run)
    with _cache_lock:
        if (key, at) in _cuts:
            return _cuts[(key, at)]
    with _local(services, key) as path:
        try:
            found = frames_cut.cut(path, at)
        except frames_cut.VideoUnreadable:
            raise ChainError(UNREADABLE_VIDEO) from None
    return _remember(_cuts, (key, at), found)


# ------------------------------------------------------------------ the next shot
def next_request(parent: VideoRequest, url: str, role: str,
                 aspect: str | None = None) -> tuple[VideoRequest, list[str]]:
    """The parent's settings with the frame in its role; what had to change, in words."""
    notes: list[str] = []
    aspect = aspect if aspect in ASPECTS else parent.effective_aspect
    images = tuple(parent.image_urls)
    if role == FIRST:
        if len(images) > 1 and images[1]:
            notes.append("The earlier shot's last frame was left out: this shot starts from the chosen frame "
                         "and the model chooses how it ends.")
        images = (url,)
    else:
        images = (images[0] if images and images[0] else "", url)
        if not images[0]:
            notes.append("A last frame needs a first frame: add one in Compose before you generate.")
    duration = parent.effective_duration
    limit = i2v_limit(parent.contract)
    if limit is not None and duration > limit:
        notes.append(f"Image-to-video runs are at most {limit} s, so the duration is {limit} s instead of "
                     f"{duration} s.")
        duration = limit
    request = parent.replace(image_urls=images, duration=duration, aspect_ratio=aspect,
                             mode=parent.effective_mode)
    return request, notes


def _fit(data: bytes, aspect: str, frame_aspect: float, how: str) -> tuple[bytes, list[str]]:
    """The frame made to meet the image rules and the next shot's aspect (lib/frame_fix: crop or pad)."""
    ratio = frame_fix.ratio_of(aspect)
    refused = any(p.level == "error" for p in check_image(data, "first_frame"))
    if abs(frame_aspect - ratio) / ratio < 0.02 and not refused:
        return data, []
    if not frame_fix.fixable(data):
        return data, []
    if how == "pad":
        return frame_fix.pad(data, ratio), [f"The frame was padded to {aspect} with bars."]
    return frame_fix.crop(data, None, ratio), [f"The frame was cropped to {aspect} (the middle kept)."]


def prepare(services: Services, run: Run, at: float, role: str, *, aspect: str | None = None,
            fit: str = "crop", actor: Actor = NOBODY) -> Prepared:
    """Cut the frame, make it fit, upload it (deduplicated by hash) and build the next shot's request.
    Nothing is written to the ledger and nothing is sent: Compose does that on Generate."""
    if role not in ROLES:
        raise ChainError("Choose whether the frame starts the next shot or ends a new one.")
    found = cut_frame(services, run, at, actor=actor)
    parent = run.request
    if not parent.prompt:
        raise ChainError("This run's settings are unknown (it was recovered by task id), so it cannot be "
                         "continued here.")
    target = aspect if aspect in ASPECTS else parent.effective_aspect
    data, notes = _fit(found.data, target, found.width / max(1, found.height), fit)
    field_name = ROLE_FIELDS[role]
    url, problems = playground.upload_frame(services, data, f"frame-{found.time:.2f}s.jpg", field_name)
    errors = [p for p in problems if p.level == "error"]
    if url is None or errors:
        words = "; ".join(p.message for p in errors) or "The upload failed."
        raise ChainError(f"{words} Nothing was changed: try again in a moment.")
    request, more = next_request(parent, url, role, target)
    return Prepared(request, url, role, found.time, run.run_id, [*notes, *more])


def link_if_used(services: Services, run_id: str, pending: dict[str, Any] | None,
                 request: VideoRequest) -> ChainLink | None:
    """After Generate made `run_id`: link it as the next shot when its request still carries the frame
    in the same role (a person who removed or replaced the frame made an ordinary run)."""
    if not pending:
        return None
    slot = 0 if pending.get("role") == FIRST else 1
    urls = request.image_urls
    if len(urls) <= slot or urls[slot] != pending.get("url"):
        return None
    parent = services.ledger.get(str(pending.get("parent_id")))
    if parent is None:
        return None
    return services.ledger.link_shot(run_id, parent.run_id, float(pending.get("frame_time") or 0.0),
                                     str(pending["role"]))


# ------------------------------------------------------------------ sequences
def order(last_run_id: str, path: Sequence[ChainLink]) -> list[str]:
    """Run ids in playing order for the path from `last_run_id` up to its first shot."""
    if not path:
        return [last_run_id]
    ids = [path[-1].parent_run_id]
    for link in reversed(path):
        at = ids.index(link.parent_run_id)
        ids.insert(at + 1 if link.role == FIRST else at, link.run_id)
    return ids


def shots(ledger: Ledger, last_run_id: str) -> tuple[list[Run], dict[str, ChainLink]]:
    """The runs of the sequence ending at `last_run_id`, in playing order, and each one's link."""
    path = ledger.chain_path(last_run_id, MAX_SHOTS)
    ids = order(last_run_id, path)
    runs = {r.run_id: r for r in ledger.get_many(ids)}
    return [runs[i] for i in ids if i in runs and not runs[i].unreadable], {lk.run_id: lk for lk in path}


def in_chain(ledger: Ledger, run: Run) -> bool:
    return ledger.chain_link(run.run_id) is not None or ledger.continued(run.run_id)


def signature(runs: Sequence[Run]) -> str:
    """What an export was made from: the shots' archived files, in order."""
    return hashlib.sha256("|".join(r.video_path or "-" for r in runs).encode()).hexdigest()


def not_ready(runs: Sequence[Run]) -> str | None:
    """Why the sequence cannot be exported yet, in words; None when every shot is archived."""
    if len(runs) < 2:
        return "A sequence needs at least two shots: continue this run from one of its frames first."
    for i, run in enumerate(runs, 1):
        if run.state != COMPLETED:
            return f"Shot {i} is not finished yet ({run.state.replace('_', ' ')}): export once every shot is."
        if not run.video_path:
            return f"Shot {i} is not saved yet: export once every shot shows its video."
    return None


_export_locks: dict[str, threading.Lock] = {}
_export_locks_guard = threading.Lock()


def _lock_for(sequence_id: str) -> threading.Lock:
    with _export_locks_guard:
        if len(_export_locks) > 256:
            for k in [k for k, lk in _export_locks.items() if not lk.locked()]:
                del _export_locks[k]
        return _export_locks.setdefault(sequence_id, threading.Lock())


def _stored(services: Services, seq: SequenceRow, sig: str) -> Exported | None:
    if seq.export_signature == sig and seq.video_path and services.archive.exists(seq.video_path):
        return Exported(seq.video_path, seq.poster_path, seq.duration or 0.0, seq.export_mode or "", True)
    return None


def export(services: Services, sequence_id: str) -> Exported:
    """One MP4 of the sequence's shots, archived like any video; a second press (any tab) reuses it."""
    seq = services.ledger.sequence(sequence_id)
    if seq is None:
        raise ChainError(SEQUENCE_NOT_FOUND)
    runs, _ = shots(services.ledger, seq.last_run_id)
    if (words := not_ready(runs)) is not None:
        raise ChainError(words)
    sig = signature(runs)
    if (done := _stored(services, seq, sig)) is not None:
        return done
    with _lock_for(sequence_id):
        seq = services.ledger.sequence(sequence_id) or seq
        if (done := _stored(services, seq, sig)) is not None:
            return done
        made = _make(services, sequence_id, runs)
        if services.ledger.set_sequence_export(sequence_id, signature=sig, video_path=made.video_path,
                                               poster_path=made.poster_path, duration=made.duration,
                                               mode=made.mode):
            return made
        # another process kept the same export first: use it, drop ours
        for key in (made.video_path, made.poster_path):
            if key:
                with contextlib.suppress(OSError, ValueError):
                    services.archive.storage.delete(key)
        again = services.ledger.sequence(sequence_id)
        return (_stored(services, again, sig) if again else None) or made


def _make(services: Services, sequence_id: str, runs: Sequence[Run]) -> Exported:
    storage = services.archive.storage
    with tempfile.TemporaryDirectory(prefix="kling-seq-") as tmp, contextlib.ExitStack() as stack:
        paths = [stack.enter_context(_local(services, services.archive.relative(str(r.video_path))))
                 for r in runs]
        out = Path(tmp) / "sequence.mp4"
        try:
            joined = frames_cut.join(paths, out)
        except frames_cut.VideoUnreadable as exc:
            raise ChainError(f"{exc} Nothing was changed; the shots are kept.") from None
        key = f"videos/{secrets.token_urlsafe(18)}.mp4"
        try:
            storage.put_file(key, out)
        except OSError as exc:
            words = exc.words if isinstance(exc, StoreUnavailable) else (exc.strerror or type(exc).__name__)
            raise ChainError(f"Saving the exported video failed ({words}). Nothing was changed; try "
                             "again in a moment.") from None
    try:
        poster: str | None = services.archive.store_poster(sequence_id, key)
    except Exception as exc:  # noqa: BLE001 - a poster is optional: the video plays without one
        log.warning("no poster for sequence %s: %s", sequence_id, exc)
        poster = None
    log.info("exported sequence %s (%d shots, %s, %.1f s)", sequence_id, len(runs), joined.mode,
             joined.duration)
    return Exported(key, poster, joined.duration, joined.mode, False)


# ------------------------------------------------------------------ the share link's preview
def sequence_subject(ledger: Ledger, ident: str) -> unfurl.Subject | None:
    """`/s/<sequence id>`: the first shot's prompt, how many shots and seconds, the export when made."""
    seq = ledger.sequence(ident)
    if seq is None:
        return None
    runs, _ = shots(ledger, seq.last_run_id)
    if not runs:
        return None
    first = next((r.request.prompt for r in runs if history.has_settings(r)), "")
    title = (f"Sequence: {unfurl.title_from(first, unfurl.TITLE_CHARS - 10)}" if first
             else "A kling-v3 sequence")
    seconds = sum(r.duration or 0 for r in runs)
    exported = seq.video_path if seq.export_signature == signature(runs) else None
    video = exported if unfurl.served_path(exported) else None
    poster = seq.poster_path if video and unfurl.served_path(seq.poster_path) else None
    if poster is None:
        poster = next((r.poster_path for r in runs if r.video_path and unfurl.served_path(r.poster_path)),
                      None)
    description = f"{len(runs)} shots, about {seconds} s, played one after another."
    description += "" if video else " Not exported as one video yet."
    sizes = [RESOLUTION.get((r.mode or "", r.aspect_ratio or "")) for r in runs]
    known = [s for s in sizes if s]
    size = max(known, key=lambda wh: (wh[0] * wh[1], wh[0])) if video and known else None  # as the export
    return unfurl.Subject("sequence", ident, title, description, unfurl.READY if video else unfurl.PENDING,
                          share_path(ident), poster_key=poster, video_key=video, size=size,
                          embeddable=video is not None)


def share_path(sequence_id: str) -> str:
    return f"/sequence?id={sequence_id}"


def share_url(base: str, sequence_id: str) -> str:
    return f"{base.rstrip('/')}{share_path(sequence_id)}"

