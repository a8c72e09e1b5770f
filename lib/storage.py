"""Where archived files live, behind one small interface: a local folder, or any S3-compatible store.

Why an interface: the archiver (lib/archive.py) writes through it and the app's own archive route
(lib/archive_route.py) reads through it, both by *key* ("videos/<token>.mp4"), never by file path. So the
folder can be anywhere (`PLAYGROUND_ARCHIVE=/any/absolute/path`), and object storage
(`PLAYGROUND_ARCHIVE=s3://bucket/prefix`, class S3Bucket) is a second class with the same methods, not a
rewrite of the archiver or the route.

Keys are relative POSIX paths made of plain segments (letters, digits, `_`, `-`, `.`; no segment starts
with a dot), so `..`, absolute paths, backslashes and hidden files are refused before any backend sees
them. The local backend also resolves every path and refuses one that leaves its root (a symlink
pointing outside included) and opens files without following a final symlink.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import stat as stat_mode
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

log = logging.getLogger(__name__)

# The largest file the archive keeps, and the largest the archive route serves: one number for both, so a
# video the archiver accepted can always be played back, and nothing bigger is ever sent.
MAX_FILE_BYTES = 500 * 2**20
CHUNK = 256 * 1024

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
MAX_KEY_LENGTH = 300
MAX_SEGMENTS = 4


class FileTooLarge(OSError):
    """A put() went past its byte limit; nothing was kept."""


class StoreUnavailable(OSError):
    """The store could not be used right now (not answering, missing bucket, refused credentials).

    `words` says which and the setting to check, for a run's card: never a credential, and not the
    endpoint or bucket either (a share link shows the card to anyone; the server log names them).
    Retrying later may work (the archiver keeps the run and the worker tries again), unlike
    FileNotFoundError."""

    def __init__(self, words: str) -> None:
        super().__init__(words)
        self.words = words


@dataclass(frozen=True)
class Stat:
    """What the route needs for its headers: the size and the time the file was written."""

    size: int
    mtime: float


def check_key(key: str) -> str:
    """The key itself when it is a plain relative path of safe segments; ValueError otherwise."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"not an archive key: {key!r}")
    parts = key.split("/")
    if len(parts) > MAX_SEGMENTS or not all(_SEGMENT.match(p) for p in parts):
        raise ValueError(f"not an archive key: {key!r}")
    return key


@runtime_checkable
class Storage(Protocol):
    """The archive's store. Every method takes a key (see check_key) and raises ValueError for a bad one."""

    def put(self, key: str, chunks: Iterable[bytes], *, max_bytes: int = MAX_FILE_BYTES) -> int:
        """Store the bytes under `key` all at once (readers see the old object or the whole new one);
        FileTooLarge past `max_bytes`, OSError when the store cannot be written. Returns the size."""
        ...

    def put_file(self, key: str, path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> int:
        """put() of a local file's bytes."""
        ...

    def stat(self, key: str) -> Stat | None:
        """Size and write time, or None when there is no such object."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """FileNotFoundError when missing."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) in chunks (end None: to the end); FileNotFoundError when missing."""
        ...

    def delete(self, key: str) -> bool:
        """True when something was removed."""
        ...

    def local_file(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A local file with the object's bytes, for tools that need a path (PyAV reads posters from it);
        a remote backend downloads it to a temporary file for the duration of the `with`."""
        ...


class LocalFolder:
    """A folder on this machine (any absolute path; the default is data/archive in the checkout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalFolder({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def path(self, key: str) -> Path:
        """The file for a key; ValueError when the key is bad or its path leaves the root (symlinks too)."""
        check_key(key)
        root = self.root.resolve()
        target = (root / key).resolve()
        if target == root or root not in target.parents:
            raise ValueError(f"{key!r} is outside the archive folder")
        return target

    def key_of(self, path: Path | str) -> str:
        """The key of a file inside the root (an absolute path, or one relative to the root)."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        try:
            rel = p.resolve().relative_to(self.root.resolve())
        except ValueError as exc:
            raise ValueError(f"{p} is outside the archive folder") from exc
        return check_key(rel.as_posix())

    # ------------------------------------------------------------------ writes
    def put(self, key: str, chunks: Iterable[bytes], *, max_bytes: int = MAX_FILE_BYTES) -> int:
        """Temp file in the target's folder, fsync, then os.replace: readers never see half a file."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=target.suffix, dir=target.parent)
        written = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    written += len(chunk)
                    if written > max_bytes:
                        raise FileTooLarge(f"more than {max_bytes} bytes for {key}")
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            tmp = ""
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return written

    def put_file(self, key: str, path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> int:
        with open(path, "rb") as fh:
            return self.put(key, iter(lambda: fh.read(CHUNK), b""), max_bytes=max_bytes)

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ reads
    def stat(self, key: str) -> Stat | None:
        try:
            found = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(found.st_mode):
            return None
        return Stat(size=found.st_size, mtime=found.st_mtime)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def size(self, key: str) -> int:
        found = self.stat(key)
        if found is None:
            raise FileNotFoundError(key)
        return found.size

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Chunks of [start, end); the file is opened at once (so a missing one fails here, not later)
        without following a symlink, and closed when the iterator ends or is dropped."""
        fd = os.open(self.path(key), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        fh = os.fdopen(fd, "rb")
        return _chunks(fh, start, end)

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path


def _chunks(fh: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with fh:
        fh.seek(max(0, start))
        left = None if end is None else max(0, end - start)
        while left is None or left > 0:
            data = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data


def open_storage(location: Path | str | S3Location) -> Storage:
    """The backend for a configured archive location: an S3Location (from `s3://…`) or a folder."""
    if isinstance(location, S3Location):
        return S3Bucket(location)
    return LocalFolder(Path(location))


# ---------------------------------------------------------------------------------------------------------
# Object storage


@dataclass(frozen=True)
class S3Location:
    """Where an S3 archive lives: `s3://bucket/prefix` plus the endpoint and credentials (lib/config.py
    reads and checks them). The secret, and the access key id with it, never appear in repr()."""

    bucket: str
    prefix: str = ""                    # "" or segments without a trailing slash: "team/archive"
    endpoint_url: str | None = None     # None: AWS itself; anything else: an S3-compatible server
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def where(self) -> str:
        """For the server log: the bucket and the server (never a credential; cards get no values)."""
        host = self.endpoint_url or f"AWS S3 ({self.region})"
        return f"{self.url} at {host}"

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)


_CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                  ".webp": "image/webp"}
_KNOWN_OBJECTS = 4096          # stat()s remembered per store (a few hundred bytes each)
_SPOOL_IN_MEMORY = 8 * 2**20   # put(): the first 8 MB stay in memory, the rest of a video in a temp file
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_REFUSED = frozenset({"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                      "InvalidToken", "ExpiredToken", "AllAccessDisabled", "AccountProblem"})


class S3Bucket:
    """The archive in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, R2, GCS's S3 API, …) via boto3.

    Why boto3 rather than fsspec/s3fs: it is already a pinned, well-kept dependency of this project, and
    the archive needs exactly five S3 calls (HeadObject, GetObject with Range, PutObject, DeleteObject,
    HeadBucket) with their error codes, so that each failure becomes words. It is synchronous, which fits
    the worker's threads and the route's thread pool; s3fs would add aiobotocore, an event loop of its
    own, a tight botocore pin and a listing cache that can show one replica a stale view of another's
    writes.

    How: put() spools the bytes locally first (memory, then a temp file), so the size cap is enforced
    before anything is sent and the upload is one PutObject: readers on every replica see no object or
    the whole object, never part of one. read() asks for exactly the byte range the route was asked for.
    Checksums are sent only when a store requires them: several S3-compatible servers refuse the
    trailing checksums newer botocore adds by default. Every failure is a FileNotFoundError (no such
    object) or a StoreUnavailable whose words name the bucket and server, never a credential.
    """

    def __init__(self, location: S3Location, *, client: Any | None = None, attempts: int = 3) -> None:
        self.location = location
        self._client = client
        self.attempts = max(1, int(attempts))  # per call, botocore's standard back-off between them
        self._lock = threading.Lock()
        self._known: OrderedDict[str, Stat] = OrderedDict()  # see stat()

    def __repr__(self) -> str:
        return f"S3Bucket({self.location.url!r}, endpoint={self.location.endpoint_url!r})"

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (one per store: boto3 clients are thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3  # lazy: a local-folder archive never pays for importing boto3
                from botocore.config import Config

                loc = self.location
                config = Config(
                    connect_timeout=5, read_timeout=60,
                    retries={"max_attempts": self.attempts, "mode": "standard"},
                    max_pool_connections=32,
                    s3={"addressing_style": "path" if loc.endpoint_url else "auto"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=loc.endpoint_url, region_name=loc.region,
                    aws_access_key_id=loc.access_key_id, aws_secret_access_key=loc.secret_access_key,
                    config=config)
            return self._client

    # ------------------------------------------------------------------ errors
    def _failure(self, exc: Exception, key: str | None = None) -> OSError:
        """A boto3/botocore error as FileNotFoundError or StoreUnavailable in words.

        The words go on a run's card, which a share link shows to anyone holding it, so they name the
        setting to check, never its value (endpoint, bucket) nor a credential; the log has the details."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = self.location.where
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _MISSING and key is not None:
                return FileNotFoundError(key)
            log.warning("object store error %s (HTTP %s) for %s", code, status, where)
            if code == "NoSuchBucket":
                return StoreUnavailable("the archive's bucket does not exist (check the bucket named in "
                                        "PLAYGROUND_ARCHIVE)")
            if code in _REFUSED:
                return StoreUnavailable("the object store refused the archive's access key (check "
                                        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the key's rights on "
                                        "the bucket)")
            shown = code if re.fullmatch(r"[A-Za-z0-9]{1,40}", code) else "an error"
            return StoreUnavailable(f"the archive's object store answered {shown} (HTTP {status})")
        if isinstance(exc, NoCredentialsError):
            log.warning("no credentials for %s", where)
            return StoreUnavailable("there are no credentials for the archive's object store (set "
                                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        if isinstance(exc, BotoCoreError | OSError):
            log.warning("object store at %s failed: %s", where, type(exc).__name__)
            return StoreUnavailable("the archive's object store did not answer (check that it runs and "
                                    "PLAYGROUND_S3_ENDPOINT)")
        raise exc

    def _call(self, name: str, key: str | None = None, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, name)(Bucket=self.location.bucket, **kw)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._failure(exc, key) from None

    # ------------------------------------------------------------------ writes
    def put(self, key: str, chunks: Iterable[bytes], *, max_bytes: int = MAX_FILE_BYTES) -> int:
        name = self.location.object_key(key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if written > max_bytes:
                    raise FileTooLarge(f"more than {max_bytes} bytes for {key}")
                spool.write(chunk)
            spool.seek(0)
            content_type = _CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream")
            self._forget(key)
            self._call("put_object", Key=name, Body=spool, ContentLength=written, ContentType=content_type)
        return written

    def put_file(self, key: str, path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> int:
        with open(path, "rb") as fh:
            return self.put(key, iter(lambda: fh.read(CHUNK), b""), max_bytes=max_bytes)

    def delete(self, key: str) -> bool:
        self._forget(key)
        if self.stat(key) is None:
            return False
        self._forget(key)
        self._call("delete_object", key, Key=self.location.object_key(key))
        return True

    # ------------------------------------------------------------------ reads
    def stat(self, key: str) -> Stat | None:
        """HeadObject. A missing object is None (a missing bucket too: S3 answers both with a bare 404).

        An object once seen is remembered (bounded): archive objects are written once under a new token
        and never changed, so the route's many Range requests of one video, and the cards asking whether a
        video is there, cost one HEAD per process instead of one each. put() and delete() forget the key."""
        name = self.location.object_key(key)
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
                return known
        try:
            head = self._call("head_object", key, Key=name)
        except FileNotFoundError:
            return None
        found = Stat(size=int(head["ContentLength"]), mtime=head["LastModified"].timestamp())
        with self._lock:
            self._known[key] = found
            while len(self._known) > _KNOWN_OBJECTS:
                self._known.popitem(last=False)
        return found

    def _forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def size(self, key: str) -> int:
        found = self.stat(key)
        if found is None:
            raise FileNotFoundError(key)
        return found.size

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """GetObject of exactly [start, end): the request is made here (a missing object fails now, not
        when the first chunk is wanted); the body is closed when the iterator ends or is dropped."""
        name = self.location.object_key(key)
        start = max(0, start)
        if end is not None and end <= start:
            return iter(())
        kw: dict[str, Any] = {"Bucket": self.location.bucket, "Key": name}
        if end is not None:
            kw["Range"] = f"bytes={start}-{end - 1}"
        elif start:
            kw["Range"] = f"bytes={start}-"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(**kw)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # past the end: no bytes
                return iter(())
            raise self._failure(exc, key) from None
        except (BotoCoreError, OSError) as exc:
            raise self._failure(exc, key) from None
        return self._body(answer["Body"])

    def _body(self, body: Any) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(CHUNK)
        except (BotoCoreError, OSError) as exc:
            raise self._failure(exc) from None
        finally:
            body.close()

    @contextlib.contextmanager
    def local_file(self, key: str, *, max_bytes: int = MAX_FILE_BYTES) -> Iterator[Path]:
        """The object downloaded to a temporary file for the `with` (PyAV needs a path), at most
        `max_bytes` (FileTooLarge past it, before or during the download); removed afterwards."""
        found = self.stat(key)
        if found is None:
            raise FileNotFoundError(key)
        if found.size > max_bytes:
            raise FileTooLarge(f"{key} is {found.size} bytes, more than {max_bytes}")
        fd, tmp = tempfile.mkstemp(prefix="playground-s3-", suffix=Path(key).suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                written = 0
                for chunk in self.read(key):
                    written += len(chunk)
                    if written > max_bytes:
                        raise FileTooLarge(f"{key} grew past {max_bytes} bytes while downloading")
                    fh.write(chunk)
            yield Path(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def check(self) -> None:
        """HeadBucket: StoreUnavailable in words when the bucket is missing, refused or not answering."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.location.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NotFound", "NoSuchBucket"):
                log.warning("no bucket %s", self.location.where)
                raise StoreUnavailable("the archive's bucket does not exist (check the bucket named in "
                                       "PLAYGROUND_ARCHIVE)") from None
            raise self._failure(exc) from None
        except (BotoCoreError, OSError) as exc:
            raise self._failure(exc) from None
