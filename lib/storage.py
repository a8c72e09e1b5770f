"""Where archived files live, behind one small interface: a local folder today, object storage later.

Why an interface: the archiver (lib/archive.py) writes through it and the app's own archive route
(lib/archive_route.py) reads through it, both by *key* ("videos/<token>.mp4"), never by file path. So the
folder can be anywhere (`PLAYGROUND_ARCHIVE=/any/absolute/path`), and an S3-compatible store is a second
class with these methods, not a rewrite of the archiver or the route.

Keys are relative POSIX paths made of plain segments (letters, digits, `_`, `-`, `.`; no segment starts
with a dot), so `..`, absolute paths, backslashes and hidden files are refused before any backend sees
them. The local backend also resolves every path and refuses one that leaves its root (a symlink
pointing outside included) and opens files without following a final symlink.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat as stat_mode
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

# The largest file the archive keeps, and the largest the archive route serves: one number for both, so a
# video the archiver accepted can always be played back, and nothing bigger is ever sent.
MAX_FILE_BYTES = 500 * 2**20
CHUNK = 256 * 1024

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
MAX_KEY_LENGTH = 300
MAX_SEGMENTS = 4


class FileTooLarge(OSError):
    """A put() went past its byte limit; nothing was kept."""


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


def open_storage(location: Path | str) -> Storage:
    """The backend for a configured archive location: a folder (object storage adds its own backend)."""
    return LocalFolder(Path(location))
