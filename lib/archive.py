"""Keeps finished videos, posters and uploads on our own disk, served from the app's own origin.

Why: the gateway's links expire after 24 h, and `st.video(bytes)` would copy a file into every session's
memory. Files land under the archive root (data/archive), which the committed symlink `static ->
data/archive` exposes at /app/static/… with HTTP Range (server.enableStaticServing), so browsers can seek.

Safety: downloads go through lib/safe_fetch (only http(s), no private or local addresses except the
configured gateway's own origin, redirects re-checked, size and time caps), the content type is checked, files
are written to a temp file in the same folder and moved into place with os.replace (a reader never sees
half a file), and names come from the run id (checked) or a sha256, never from user input.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

from lib.safe_fetch import Fetched, FetchError, SafeFetcher

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_SUFFIX = re.compile(r"^[a-z0-9]{1,8}$")
VIDEO_TYPES = frozenset({"video/mp4", "application/octet-stream"})
MAX_POSTER_BYTES = 10 * 2**20
POSTER_WIDTH = 320
POSTER_SECONDS = 30.0  # a thumbnail that takes longer is not worth waiting for: frame 0 is used instead
EXPIRED_STATUSES = frozenset({403, 404, 410})
_CHUNK = 256 * 1024
STATIC_PREFIX = "/app/static/"

EXPIRED_MESSAGE = (
    "The gateway's link to this video expired before it was archived, so the video is gone. "
    "Re-run it to get a new video."
)


class ArchiveError(Exception):
    """Why a file could not be kept, as a code the worker acts on and a message in words for the user.

    Codes: expired, too_large, bad_type, bad_url (never retried); disk, network (retried later).
    """

    RETRYABLE = frozenset({"disk", "network"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in self.RETRYABLE


def _disk_error(exc: OSError, what: str) -> ArchiveError:
    reason = exc.strerror or type(exc).__name__
    return ArchiveError(
        "disk",
        f"Could not save the {what} to the archive folder ({reason}). Free some disk space or fix the "
        "folder's permissions; the run is kept and saving is tried again automatically.",
    )


class Archive:
    """The archive folder: videos/<run_id>.mp4, posters/<run_id>.jpg, uploads/<sha256>.<ext>."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 500 * 2**20,
        fetcher: SafeFetcher | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        # Downloads go through the guarded fetcher only. The default trusts no origin, so loopback and
        # private addresses are refused; lib/services passes one that trusts the configured gateway.
        self.fetcher = fetcher or SafeFetcher()

    def __repr__(self) -> str:
        return f"Archive(root={str(self.root)!r}, max_bytes={self.max_bytes})"

    # ------------------------------------------------------------------ paths
    def video_path(self, run_id: str) -> Path:
        return self.root / "videos" / f"{_check_run_id(run_id)}.mp4"

    def poster_path(self, run_id: str) -> Path:
        return self.root / "posters" / f"{_check_run_id(run_id)}.jpg"

    def relative(self, path: Path | str) -> str:
        """The path as stored in the ledger: relative to the root, so the data folder can move."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        try:
            rel = p.resolve().relative_to(self.root.resolve())
        except ValueError as exc:
            raise ValueError(f"{p} is outside the archive folder") from exc
        return rel.as_posix()

    def resolve(self, stored: Path | str) -> Path:
        """A stored (relative) path back to a file path; refuses anything outside the root."""
        return self.root.resolve() / self.relative(stored)

    def public_url(self, path: Path | str) -> str:
        """Same-origin URL served by Streamlit's static serving (static -> data/archive)."""
        return STATIC_PREFIX + quote(self.relative(path))

    # ------------------------------------------------------------------ stores
    def store_video(self, run_id: str, url: str) -> Path:
        """Download the gateway's video for a run into videos/<run_id>.mp4 (atomic)."""
        target = self.video_path(run_id)
        with self._get(url, what="video") as resp:
            kind = _content_type(resp)
            if kind not in VIDEO_TYPES:
                raise ArchiveError(
                    "bad_type",
                    f"The gateway's video link returned {kind or 'no content type'} instead of an MP4 "
                    "video, so it was not saved.",
                )
            chunks = self._capped(resp, self.max_bytes, what="video")
            first = next(chunks, b"")
            if b"ftyp" not in first[:64]:
                raise ArchiveError("bad_type", "The gateway's video link did not return an MP4 file.")
            self._write(target, _prepend(first, chunks), what="video")
        log.info("archived video for run %s (%d bytes)", run_id, target.stat().st_size)
        return target

    def store_poster(self, run_id: str, video: Path, thumbnail_url: str | None = None) -> Path:
        """A JPEG poster: the gateway's thumbnail when it gave one, else frame 0 of the archived video."""
        target = self.poster_path(run_id)
        if thumbnail_url:
            try:
                with self._get(thumbnail_url, what="poster") as resp:
                    kind = _content_type(resp)
                    if not kind.startswith("image/"):
                        raise ArchiveError("bad_type", f"The poster link returned {kind or 'no type'}.")
                    self._write(target, self._capped(resp, MAX_POSTER_BYTES, what="poster"), what="poster")
                return target
            except ArchiveError as exc:
                if exc.code == "disk":
                    raise
                log.info("poster download for run %s failed (%s); using frame 0", run_id, exc.code)
        self._write(target, [_first_frame_jpeg(video)], what="poster")
        return target

    def store_upload(self, data: bytes, suffix: str) -> Path:
        """Keep an uploaded image under uploads/<sha256>.<suffix>: the user's file name is never used."""
        ext = suffix.lower().lstrip(".")
        if not _SUFFIX.match(ext):
            raise ValueError(f"unusable file suffix {suffix!r}")
        target = self.root / "uploads" / f"{hashlib.sha256(data).hexdigest()}.{ext}"
        if not target.exists():
            self._write(target, [data], what="upload")
        return target

    # ------------------------------------------------------------------ transport
    @contextlib.contextmanager
    def _get(self, url: str, *, what: str) -> Iterator[Fetched]:
        """The gateway's file through the guarded fetcher (lib/safe_fetch), its refusals in words."""
        limit = self.max_bytes if what == "video" else MAX_POSTER_BYTES
        seconds = None if what == "video" else POSTER_SECONDS  # None: the fetcher's cap (5 min)
        try:
            with self.fetcher.open(url or "", max_bytes=limit, total_timeout=seconds) as resp:
                yield resp
        except FetchError as exc:
            raise _fetch_error(exc, what, limit) from None

    def _capped(self, resp: Fetched, limit: int, *, what: str) -> Iterable[bytes]:
        try:
            yield from resp.chunks(_CHUNK)
        except FetchError as exc:
            raise _fetch_error(exc, what, limit) from None

    def _write(self, target: Path, chunks: Iterable[bytes], *, what: str) -> None:
        """Temp file in the target's folder, then os.replace: readers see the old or the whole new file."""
        tmp: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=target.suffix, dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise _disk_error(exc, what) from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


def _fetch_error(exc: FetchError, what: str, limit: int) -> ArchiveError:
    """A refused or failed download as the worker's code and the user's words (details go to the log)."""
    log.info("%s download refused or failed: %s", what, exc)
    if exc.code == "bad_url":
        return ArchiveError("bad_url", f"The gateway's {what} link (or a redirect from it) is not an http(s) "
                            "web address, so it was not fetched.")
    if exc.code == "blocked":
        return ArchiveError(
            "bad_url",
            f"The gateway's {what} link leads to a local or private network address, or to a host that is "
            "not an allowed file host (PLAYGROUND_FILE_HOSTS), which this app never downloads from, so "
            "it was not fetched. The run is kept with its settings; check the gateway before re-running it.",
        )
    if exc.code == "status" and exc.status in EXPIRED_STATUSES:
        return ArchiveError("expired", EXPIRED_MESSAGE)
    if exc.code == "status":
        return ArchiveError(
            "network", f"The file host answered HTTP {exc.status} for the {what}; trying again shortly."
        )
    if exc.code == "too_large":
        return ArchiveError("too_large", _too_large(what, limit))
    if exc.code == "bad_type":
        return ArchiveError("bad_type", f"The gateway's {what} link sent an encoded or unusable body, so it "
                            "was not saved.")
    return ArchiveError("network", f"Could not download the {what} from the gateway's file host; trying "
                        "again shortly.")


def _content_type(resp: Fetched) -> str:
    return (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _too_large(what: str, limit: int) -> str:
    return f"The {what} is larger than the archive's limit of {limit // 2**20} MB, so it was not saved."


def _prepend(first: bytes, rest: Iterable[bytes]) -> Iterable[bytes]:
    if first:
        yield first
    yield from rest


def _first_frame_jpeg(video: Path) -> bytes:
    """Frame 0 scaled to POSTER_WIDTH as JPEG bytes (single-threaded decode: one frame needs no threads)."""
    import io

    import av  # lazy: only posters without a gateway thumbnail need it

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            frame = next(container.decode(stream))
            height = max(2, round(frame.height * POSTER_WIDTH / frame.width / 2) * 2)
            image = frame.reformat(width=POSTER_WIDTH, height=height, format="rgb24").to_image()
    except (av.FFmpegError, StopIteration, IndexError) as exc:
        raise ArchiveError("bad_type", "The archived video has no readable first frame for a poster.") \
            from exc
    except OSError as exc:
        raise _disk_error(exc, "poster") from exc
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
