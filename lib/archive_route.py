"""The app's own route for archived files: `/archive/videos/<token>.mp4` and `/archive/posters/<token>.jpg`.

Why our own route (an `st.App` route, started by `streamlit run app.py` like the pages): Streamlit's static
serving only served a `static/` folder inside the checkout (so `PLAYGROUND_ARCHIVE` elsewhere broke every
video), capped files at 200 MB while the archive kept up to 500 MB, and sent every file with
`Access-Control-Allow-Origin: *`. This route serves whatever storage backend the archive uses, through
lib/storage.Storage, with what a video player needs:

- HTTP Range (206, `bytes=a-b`, `a-`, `-n`; 416 past the end), so browsers can seek; HEAD;
- `video/mp4` / `image/jpeg` from the key's kind, never guessed from the bytes, and `nosniff`;
- caching for files that never change (a token names one file for good): a year's `max-age`,
  `immutable`, an ETag and Last-Modified, 304 for If-None-Match / If-Modified-Since, If-Range honoured;
- only names of the form `<8–64 of A-Z a-z 0-9 _ ->.<mp4|jpg>` under `videos/` or `posters/`: no
  listing, no other file of the archive (uploads, temp files, dotfiles), no `..` or encoded escape
  (the storage refuses paths that leave its root as well), 404 for anything else;
- no `Access-Control-Allow-Origin` header: other sites cannot read the bytes with fetch();
- nothing over the archive's size cap (MAX_FILE_BYTES), the same number the archiver enforces.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from lib.storage import MAX_FILE_BYTES, Stat, Storage, StoreUnavailable

log = logging.getLogger(__name__)

ROUTE_PREFIX = "/archive"
KINDS: Mapping[str, tuple[str, str]] = {
    "videos": (".mp4", "video/mp4"),
    "posters": (".jpg", "image/jpeg"),
}
NAME = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CACHE_CONTROL = "private, max-age=31536000, immutable"
_MAX_DIGITS = 18  # byte offsets; int() of a longer string is pointless (and 4,300+ digits raise)
_Unsatisfiable = object()


def prefix_for(base_url_path: str | None) -> str:
    """The route's prefix under Streamlit's server.baseUrlPath ("" -> "/archive", "x" -> "/x/archive")."""
    base = (base_url_path or "").strip("/")
    return f"/{base}{ROUTE_PREFIX}" if base else ROUTE_PREFIX


def served(key: str) -> tuple[str, str] | None:
    """(kind, content type) when the route serves this key ("videos/<name>.mp4"), else None."""
    kind, sep, name = (key or "").partition("/")
    if not sep or kind not in KINDS:
        return None
    suffix, content_type = KINDS[kind]
    if not name.endswith(suffix) or not NAME.match(name[: -len(suffix)]):
        return None
    return kind, content_type


def url_path(key: str) -> str:
    """The route path of a stored key (without the base URL path); ValueError if it is not served."""
    if served(key) is None:
        raise ValueError(f"the archive route does not serve {key!r}")
    return f"{ROUTE_PREFIX}/{key}"


def make_routes(
    storage: Callable[[], Storage],
    *,
    prefix: str = ROUTE_PREFIX,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[BaseRoute]:
    """The routes to pass to st.App(routes=...). `storage` is called per request (it may be built lazily
    from the settings); anything else under the prefix answers 404, so there is never a listing."""

    async def archive_file(request: Request) -> Response:
        key = f"{request.path_params['kind']}/{request.path_params['name']}"
        what = served(key)
        if what is None:
            return _not_found()
        try:
            store = storage()
        except Exception:  # a bad setting: the log has the details, the viewer gets words
            log.exception("the archive route has no storage")
            return _unavailable()
        try:
            found = await run_in_threadpool(store.stat, key)
        except StoreUnavailable as exc:  # the bucket is down or refuses us: not a 404 (it may come back)
            log.warning("archive route: %s", exc.words)
            return _unavailable()
        except (ValueError, OSError):
            found = None
        if found is None or found.size > max_bytes:
            return _not_found()
        return await _file_response(request, store, key, what, found)

    async def nothing_here(request: Request) -> Response:
        del request
        return _not_found()

    return [
        Route(prefix + "/{kind}/{name}", archive_file, methods=["GET", "HEAD"]),
        Route(prefix + "/{rest:path}", nothing_here, methods=["GET", "HEAD"]),
        Route(prefix, nothing_here, methods=["GET", "HEAD"]),
    ]


async def _file_response(request: Request, store: Storage, key: str, what: tuple[str, str],
                         found: Stat) -> Response:
    size = found.size
    etag = f'"{size:x}-{int(found.mtime * 1_000_000):x}"'
    last_modified = formatdate(found.mtime, usegmt=True)
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": etag,
        "Last-Modified": last_modified,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": _disposition(request, key, what[0]),
    }
    if _not_modified(request.headers, etag, found.mtime):
        return Response(status_code=304, headers=headers)
    span = _range(request.headers, etag, last_modified, size)
    if span is _Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = span if isinstance(span, tuple) else (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if isinstance(span, tuple):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    content_type = what[1]
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=content_type)
    try:
        body = await run_in_threadpool(store.read, key, start, end)
    except (FileNotFoundError, ValueError):
        return _not_found()
    except StoreUnavailable as exc:
        log.warning("archive route: %s", exc.words)
        return _unavailable()
    return StreamingResponse(body, status_code=status, headers=headers, media_type=content_type)


def _unavailable() -> Response:
    """503 in words; the cause (which may name the bucket and server) stays in the server log."""
    return PlainTextResponse("The archive is not available right now.",
                             status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "5"})


def _not_found() -> Response:
    return PlainTextResponse("Not found.", status_code=404, headers={"Cache-Control": "no-store"})


def _disposition(request: Request, key: str, kind: str) -> str:
    """inline, or attachment with a plain file name for `?download=1` (the Download button)."""
    if request.query_params.get("download") != "1":
        return "inline"
    suffix = KINDS[kind][0]
    token = key.rsplit("/", 1)[-1][: -len(suffix)]
    return f'attachment; filename="kling-{token[:8]}{suffix}"'


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and int(mtime) <= since


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _digits(text: str) -> int | None:
    text = text.strip()
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _range(headers: Mapping[str, str], etag: str, last_modified: str, size: int) -> Any:
    """(start, end) for one satisfiable byte range, _Unsatisfiable, or None to send the whole file.

    Malformed, multi-range and non-byte ranges are ignored (RFC 9110 allows a server to send the whole
    file instead); an If-Range that does not match the file's ETag or date also means the whole file.
    """
    value = headers.get("range")
    if not value:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        return None
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.partition("-")
    if not dash:
        return None
    if not first.strip():  # the last n bytes
        n = _digits(last)
        if n is None:
            return None
        if n == 0 or size == 0:
            return _Unsatisfiable
        return max(0, size - n), size
    start = _digits(first)
    if start is None:
        return None
    if last.strip():
        stop = _digits(last)
        if stop is None or stop < start:
            return None
        end = min(stop + 1, size)
    else:
        end = size
    if start >= size:
        return _Unsatisfiable
    return start, end
