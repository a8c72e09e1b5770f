"""Keeps finished videos, posters and uploads in the archive, served from the app's own origin.

Why: the gateway's links expire after 24 h, and `st.video(bytes)` would copy a file into every session's
memory. Files go into the archive's storage (lib/storage.py: a local folder anywhere on disk, by default
data/archive), and the app's own route (lib/archive_route.py, `/archive/…`, with HTTP Range) serves
them, so browsers can seek and share links keep playing wherever the archive is kept.

Names: every video and poster gets its own random token (`videos/<token>.mp4`, `posters/<token>.jpg`),
unrelated to the run id or to any other file, so a direct video URL reveals nothing else (a run id
would lead to the run's share view, and a grid cell's id to its neighbours). The ledger keeps the key.
Files archived before tokens were used keep their run-id names and keep playing.

Safety: downloads go through lib/safe_fetch (only http(s), no private or local addresses except the
configured gateway's own origin, redirects re-checked, size and time caps; the size cap is the same
MAX_FILE_BYTES the route serves), the content type is checked, files are written whole or not at all
(the storage's put), and names come from a token or a sha256, never from user input.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from lib import archive_route
from lib.safe_fetch import Fetched, FetchError, SafeFetcher
from lib.storage import MAX_FILE_BYTES, FileTooLarge, LocalFolder, Storage, StoreUnavailable, check_key

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_SUFFIX = re.compile(r"^[a-z0-9]{1,8}$")
VIDEO_TYPES = frozenset({"video/mp4", "application/octet-stream"})
MAX_POSTER_BYTES = 10 * 2**20
POSTER_WIDTH = 320
POSTER_SECONDS = 30.0  # a thumbnail that takes longer is not worth waiting for: frame 0 is used instead
EXPIRED_STATUSES = frozenset({403, 404, 410})
_CHUNK = 256 * 1024
TOKEN_BYTES = 18  # 24 URL-safe characters: unguessable, and within the route's 8-64 character names
_REMEMBERED = 1024  # runs whose freshly stored files a retry reuses (see Archive._remember)

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
    if isinstance(exc, StoreUnavailable):  # object storage: its words say the cause and what to check
        return ArchiveError("disk", f"Saving the {what} failed: {exc.words}. The run is kept and saving "
                            "is retried automatically.")
    reason = exc.strerror or type(exc).__name__
    return ArchiveError(
        "disk",
        f"Could not save the {what} to the archive folder ({reason}). Free some disk space or fix the "
        "folder's permissions; the run is kept and saving is tried again automatically.",
    )


class Archive:
    """The archive: videos/<token>.mp4, posters/<token>.jpg, uploads/<sha256>.<ext> in one Storage."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = MAX_FILE_BYTES,
        fetcher: SafeFetcher | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.root = Path(root)
        self.storage: Storage = storage if storage is not None else LocalFolder(self.root)
        # never more than the route serves: a video we keep must be one we can play back
        self.max_bytes = min(int(max_bytes), MAX_FILE_BYTES)
        # Downloads go through the guarded fetcher only. The default trusts no origin, so loopback and
        # private addresses are refused; lib/services passes one that trusts the configured gateway.
        self.fetcher = fetcher or SafeFetcher()
        self._stored: dict[tuple[str, str], str] = {}
        self._stored_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Archive(storage={self.storage!r}, max_bytes={self.max_bytes})"

    # ------------------------------------------------------------------ keys
    def relative(self, path: Path | str) -> str:
        """The key as stored in the ledger ("videos/<token>.mp4"): relative to the archive, so the folder
        can move. Accepts a key or, for a local folder, a path inside it; ValueError for anything else."""
        if isinstance(self.storage, LocalFolder):
            return self.storage.key_of(path)
        return check_key(Path(path).as_posix())

    def resolve(self, stored: Path | str) -> Path:
        """A stored key back to its file in a local folder; refuses anything outside the root."""
        if not isinstance(self.storage, LocalFolder):
            raise ValueError("this archive is not a local folder")
        return self.storage.path(self.relative(stored))

    def exists(self, stored: Path | str) -> bool:
        """Whether the stored key's file is there (False for a key that is not a valid one)."""
        try:
            return self.storage.exists(self.relative(stored))
        except (ValueError, OSError):
            return False

    def public_url(self, path: Path | str) -> str:
        """Same-origin path of a stored file on the app's own archive route: "/archive/videos/<token>.mp4"
        (without the server's base URL path; the UI adds the origin and that)."""
        return archive_route.url_path(self.relative(path))

    def _new_key(self, kind: str, suffix: str) -> str:
        return f"{kind}/{secrets.token_urlsafe(TOKEN_BYTES)}{suffix}"

    def _remember(self, kind: str, run_id: str, key: str | None = None) -> str | None:
        """The key this process stored last for (kind, run): when the worker retries a run whose video was
        saved but whose poster (or ledger write) failed, the saved file is reused instead of a second copy
        under a new token. Bounded; losing the memo only costs a duplicate file, never a wrong one."""
        with self._stored_lock:
            if key is None:
                return self._stored.get((kind, run_id))
            self._stored[(kind, run_id)] = key
            while len(self._stored) > _REMEMBERED:
                del self._stored[next(iter(self._stored))]
            return key

    def _reusable(self, kind: str, run_id: str) -> str | None:
        key = self._remember(kind, run_id)
        return key if key is not None and self.exists(key) else None

    # ------------------------------------------------------------------ stores
    def store_video(self, run_id: str, url: str) -> str:
        """Download the gateway's video for a run under a new token; returns its key (videos/<token>.mp4)."""
        _check_run_id(run_id)
        done = self._reusable("videos", run_id)
        if done is not None:
            return done
        key = self._new_key("videos", ".mp4")
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
            size = self._write(key, _prepend(first, chunks), what="video", limit=self.max_bytes)
        log.info("archived video for run %s (%d bytes)", run_id, size)
        return self._remember("videos", run_id, key) or key

    def store_poster(self, run_id: str, video: Path | str, thumbnail_url: str | None = None) -> str:
        """A JPEG poster under its own token: the gateway's thumbnail when it gave one, else frame 0 of the
        archived video (`video`: its key). Returns the poster's key (posters/<token>.jpg)."""
        _check_run_id(run_id)
        done = self._reusable("posters", run_id)
        if done is not None:
            return done
        key = self._new_key("posters", ".jpg")
        if thumbnail_url:
            try:
                with self._get(thumbnail_url, what="poster") as resp:
                    kind = _content_type(resp)
                    if not kind.startswith("image/"):
                        raise ArchiveError("bad_type", f"The poster link returned {kind or 'no type'}.")
                    self._write(key, self._capped(resp, MAX_POSTER_BYTES, what="poster"), what="poster",
                                limit=MAX_POSTER_BYTES)
                return self._remember("posters", run_id, key) or key
            except ArchiveError as exc:
                if exc.code == "disk":
                    raise
                log.info("poster download for run %s failed (%s); using frame 0", run_id, exc.code)
        try:
            with self.storage.local_file(self.relative(video)) as path:
                jpeg = _first_frame_jpeg(path)
        except OSError as exc:
            raise _disk_error(exc, "poster") from exc
        self._write(key, [jpeg], what="poster", limit=MAX_POSTER_BYTES)
        return self._remember("posters", run_id, key) or key

    def store_upload(self, data: bytes, suffix: str) -> Path:
        """Keep an uploaded image under uploads/<sha256>.<suffix>: the user's file name is never used."""
        ext = suffix.lower().lstrip(".")
        if not _SUFFIX.match(ext):
            raise ValueError(f"unusable file suffix {suffix!r}")
        key = f"uploads/{hashlib.sha256(data).hexdigest()}.{ext}"
        if not self.storage.exists(key):
            self._write(key, [data], what="upload", limit=MAX_FILE_BYTES)
        return self.root / key if isinstance(self.storage, LocalFolder) else Path(key)

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

    def _capped(self, resp: Fetched, limit: int, *, what: str) -> Iterator[bytes]:
        try:
            yield from resp.chunks(_CHUNK)
        except FetchError as exc:
            raise _fetch_error(exc, what, limit) from None

    def _write(self, key: str, chunks: Iterable[bytes], *, what: str, limit: int) -> int:
        """Through the storage's put: readers see no file or the whole file, never half of one."""
        try:
            return self.storage.put(key, chunks, max_bytes=limit)
        except FileTooLarge as exc:
            raise ArchiveError("too_large", _too_large(what, limit)) from exc
        except OSError as exc:
            raise _disk_error(exc, what) from exc


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
