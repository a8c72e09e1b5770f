"""HTTP client for the ToAPIs video gateway (and the embedded local gateway, which speaks the same API).

Three promises the rest of the app builds on:
- every documented response shape reads into one `Task`, and everything else raises `ProtocolError`;
- every failure is one `GatewayError` subclass keyed by HTTP status, with words for the user
  (`user_message`), and the API key never appears in any message, repr, log line or URL;
- idempotent GETs are retried by urllib3 (429/5xx/connection errors, Retry-After honoured and capped,
  the process-wide limiter paused so no other thread sends meanwhile); the submit POST never is, because
  a blind re-send can bill twice: the ledger decides what to do with an unknown outcome.
"""
from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import mimetypes
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from lib.contract import MAX_IMAGE_MB
from lib.ratelimit import RateLimiter
from lib.safe_fetch import url_problem

log = logging.getLogger(__name__)

STATUSES = ("queued", "in_progress", "completed", "failed")
TERMINAL_STATUSES = frozenset({"completed", "failed"})
# Legacy spellings seen in older docs (S2 status table says `submitted`); read as their modern status.
_STATUS_ALIASES = {"submitted": "queued"}

SUBMIT_PATH = "/v1/videos/generations"
TASK_PATH = "/v1/videos/generations/{task_id}"
UPLOAD_PATH = "/v1/uploads/images"
BALANCE_PATH = "/v1/balance"

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
DEFAULT_MAX_RETRY_AFTER = 60.0
# Used when a 429 carries no (readable) Retry-After: long enough to leave the gateway's 1 s window.
DEFAULT_RATE_LIMIT_PAUSE = 1.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BODY_KEEP = 2000  # characters of an error body kept on the exception (HTML pages can be huge)


# --------------------------------------------------------------------------------------------------- errors


class GatewayError(Exception):
    """Base of every gateway failure; `str()` is a one-line technical summary, `user_message()` the words."""

    default_message: ClassVar[str] = "The gateway returned an error"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | int | None = None,
        type: str | None = None,  # mirrors the envelope's field name
        param: str | None = None,
        retry_after: float | None = None,
        body: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.status = status
        self.code = code
        self.type = type
        self.param = param
        self.retry_after = retry_after
        self.body = body
        self.operation = operation  # "submit" | "query" | "upload" | "balance" | None
        super().__init__(self._summary())

    def _summary(self) -> str:
        bits = [f"HTTP {self.status}"] if self.status is not None else []
        if self.code not in (None, "", self.status):
            bits.append(str(self.code))
        if self.param:
            bits.append(f"param={self.param}")
        return f"{self.message} ({', '.join(bits)})" if bits else self.message

    @property
    def outcome_unknown(self) -> bool:
        """True when a submit may or may not have created (and billed) a task."""
        return False


class BadRequest(GatewayError):
    default_message = "The gateway rejected the request parameters"


class Unauthorized(GatewayError):
    default_message = "Authentication failed, please check your API key"


class InsufficientBalance(GatewayError):
    default_message = "Insufficient account balance"


class NotFound(GatewayError):
    default_message = "Task not found"


class ContentPolicy(GatewayError):
    default_message = "Content policy violation"


class RateLimited(GatewayError):
    default_message = "Rate limit exceeded"


class ServerError(GatewayError):
    default_message = "The gateway had an internal error"


class UploadRejected(BadRequest):
    """Envelope D (`{"success": false, "message": …}`) from the upload endpoint."""

    default_message = "The image upload was rejected"


class ProtocolError(GatewayError):
    """The gateway answered, but with something we cannot read (bad JSON, unknown status, wrong shape)."""

    default_message = "The gateway sent a response the client cannot read"


class GatewayUnavailable(GatewayError):
    """The request did not get through: connection refused, DNS failure, or dropped on a GET."""

    default_message = "Could not reach the gateway"


class GatewayTimeout(GatewayError):
    """The request was sent but no complete answer came back (read timeout, or dropped mid-answer)."""

    default_message = "The gateway did not answer in time"

    @property
    def outcome_unknown(self) -> bool:
        return self.operation == "submit"


_STATUS_CLASSES: dict[int, type[GatewayError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: InsufficientBalance,
    404: NotFound,
    422: ContentPolicy,
    429: RateLimited,
}


def _class_for_status(status: int) -> type[GatewayError]:
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return GatewayError


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds (int or float) or an HTTP date; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def redact(text: str, secret: str | None) -> str:
    """Remove a secret from text: server messages sometimes echo the key they rejected."""
    if not secret or len(secret) < 4 or secret not in text:
        return text
    return text.replace(secret, "***")


def _bearer_of(resp: requests.Response) -> str | None:
    request = getattr(resp, "request", None)
    header = request.headers.get("Authorization") if request is not None else None
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def _text_summary(text: str) -> str:
    """A short readable line from a non-JSON body (an nginx/Cloudflare HTML page or plain text)."""
    title = _TITLE.search(text)
    line = title.group(1) if title else _TAGS.sub(" ", text)
    line = " ".join(line.split())
    return line[:200]


def _parse_envelope(data: Any) -> dict[str, Any]:
    """The fields of any of the four documented error envelopes (A–D), or a bare `message`/`error` string."""
    out: dict[str, Any] = {"envelope_d": False}
    if not isinstance(data, dict):
        return out
    err = data.get("error")
    if isinstance(err, dict):
        out["code"] = err.get("code")
        out["message"] = err.get("message")
        out["type"] = err.get("type")
        out["param"] = err.get("param")
    elif isinstance(err, str):
        out["message"] = err
    elif data.get("success") is False:
        out["envelope_d"] = True
        out["message"] = data.get("message")
    elif isinstance(data.get("message"), str):
        out["message"] = data["message"]
    if out.get("code") is None and isinstance(data.get("code"), (int, str)):
        out["code"] = data["code"]
    return out


def error_from_response(resp: requests.Response, operation: str | None = None) -> GatewayError:
    """The GatewayError for a non-2xx response (or a 2xx carrying an error envelope), keyed by HTTP status."""
    secret = _bearer_of(resp)
    status = resp.status_code
    text = redact(resp.text or "", secret)
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    fields = _parse_envelope(data)
    message = fields.get("message")
    if not isinstance(message, str) or not message.strip():
        summary = _text_summary(text) if data is None and text.strip() else ""
        reason = resp.reason or ""
        message = summary or reason or None
        if summary and reason and reason not in summary:
            message = f"{reason}: {summary}"
    cls = _class_for_status(status)
    if fields["envelope_d"] and (cls is BadRequest or (cls is GatewayError and status < 500)):
        cls = UploadRejected
    if 200 <= status < 300:
        cls = UploadRejected if fields["envelope_d"] else ProtocolError
    code = fields.get("code")
    err_type = fields.get("type")
    param = fields.get("param")
    return cls(
        message,
        status=status,
        code=code if isinstance(code, (int, str)) else None,
        type=err_type if isinstance(err_type, str) else None,
        param=param if isinstance(param, str) else None,
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        body=text[:_BODY_KEEP] or None,
        operation=operation,
    )


def user_message(err: GatewayError) -> str:
    """What happened and what to do, in words a user can act on."""
    detail = f" ({err.message})" if err.message and err.message != err.default_message else ""
    if isinstance(err, UploadRejected):
        return (f"The image upload was refused: {err.message}. Use a JPEG or PNG of at most "
                f"{MAX_IMAGE_MB} MB and try again.")
    if isinstance(err, BadRequest):
        field_hint = f" Check the '{err.param}' field." if err.param else " Check the settings."
        return (f"The gateway rejected the request{detail}.{field_hint} Nothing was billed; "
                "fix it and submit again.")
    if isinstance(err, Unauthorized):
        return ("The gateway did not accept the API key. Check the key in the environment or secrets "
                "(TOAPIS_API_KEY) and try again.")
    if isinstance(err, InsufficientBalance):
        return ("Your gateway balance is too low for this video. Top up your ToAPIs balance, then "
                "submit again; nothing was billed.")
    if isinstance(err, NotFound):
        return ("The gateway does not know this task id. Check the id: it may be mistyped, belong to "
                "another account, or be too old.")
    if isinstance(err, ContentPolicy):
        return (f"The content policy blocked this request{detail}. Rephrase the prompt or use another "
                "image; this attempt was not billed.")
    if isinstance(err, RateLimited):
        wait = f"{err.retry_after:.0f} s" if err.retry_after is not None else "a moment"
        return (f"The gateway's rate limit was reached; waiting {wait} before sending again. "
                "Nothing is lost: queued runs go out automatically.")
    if isinstance(err, ServerError):
        if err.operation in ("submit", "upload"):
            return (f"The gateway is having trouble (HTTP {err.status}){detail} and did not take the "
                    f"{err.operation}. Try again in a few minutes.")
        return (f"The gateway is having trouble (HTTP {err.status}){detail}. Status checks are retried "
                "automatically; if it persists, try again in a few minutes.")
    if isinstance(err, GatewayUnavailable):
        if err.operation == "submit":  # only raised when the submit provably never left (else: timeout)
            return ("The gateway could not be reached, so the submit was not sent and nothing was "
                    "billed. Check the network or the gateway URL and try again.")
        if err.operation == "upload":
            return (f"The image upload did not get through ({err.message}). Check the network or the "
                    "gateway URL and try again.")
        return ("The gateway could not be reached. Status checks are retried automatically; check the "
                "network or the gateway URL if this persists.")
    if isinstance(err, GatewayTimeout):
        if err.outcome_unknown:
            return ("The gateway did not answer the submit in time, so the outcome is unknown: a task "
                    "may have been created (and billed). Recover it by its task id if you have one, or "
                    "re-submit knowingly.")
        return "The gateway did not answer in time; it will be asked again shortly."
    if isinstance(err, ProtocolError):
        return (f"The gateway sent an answer the playground cannot read{detail}. It will be asked again; "
                "if this persists, the gateway's API may have changed.")
    return f"The gateway returned an error (HTTP {err.status}){detail}. Try again later."


# --------------------------------------------------------------------------------------------------- Task


def _as_time(value: Any) -> float | None:
    """Unix seconds from an int/float, a numeric string, or an ISO 8601 string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _as_progress(value: Any) -> int | None:
    """0–100 from an int, a float, or a string like "65" / "65%"; None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value:
        return int(max(0, min(100, round(value))))
    return None


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class Task:
    """One generation task as the gateway reports it, whatever documented shape it came in."""

    id: str
    status: str  # one of STATUSES
    progress: int  # 0–100
    created_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None  # when the gateway's video URL stops working
    video_url: str | None = None
    thumbnail_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Why the gateway's video link was refused ("is a file path, …"); the link itself is dropped, so it
    # never reaches the ledger, a player or a download.
    video_url_problem: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def no_video_reason(self) -> str | None:
        """For a completed task without a usable video link: why, in words for the user; else None."""
        if self.status != "completed" or self.video_url is not None:
            return None
        if self.video_url_problem:
            return (f"The gateway said the video is ready, but its video link {self.video_url_problem}, "
                    "so the playground refused it and never opened it. There is no video to show; the "
                    "run is kept with its settings. Check the gateway before re-running it.")
        return "The gateway said the run completed but gave no video link, so there is nothing to archive."

    @classmethod
    def from_payload(cls, data: Any) -> Task:
        """Read a submit or status body; raises ProtocolError on a shape it cannot read."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object for a task, got {type(data).__name__}")
        task_id = data.get("id", data.get("task_id"))
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id.strip():
            raise ProtocolError("task response has no 'id'")
        raw_status = data.get("status")
        if not isinstance(raw_status, str):
            raise ProtocolError(f"task {task_id} has no readable 'status' (got {raw_status!r})")
        status = raw_status.strip().lower()
        status = _STATUS_ALIASES.get(status, status)
        if status not in STATUSES:
            raise ProtocolError(f"task {task_id} has an unknown status {raw_status!r}")

        progress = _as_progress(data.get("progress"))
        if progress is None:
            # Missing progress reads as 0 (the docs' own sample code), except that a finished video is 100 %.
            progress = 100 if status == "completed" else 0

        result = data.get("result")
        items = result.get("data") if isinstance(result, dict) else None
        first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        result_dict = result if isinstance(result, dict) else {}
        video_url = _first_str(
            first.get("url"), result_dict.get("url"), data.get("url"), data.get("video_url"),
        )
        thumbnail_url = _first_str(
            first.get("thumbnail_url"), first.get("thumbnail"), result_dict.get("thumbnail"),
            data.get("thumbnail_url"), data.get("thumbnail"),
        )
        # Gateway answers are untrusted: only absolute http(s) links with a plain host go any further
        # (a path like /proc/self/environ handed to st.video would be read from this server's disk).
        video_problem = url_problem(video_url) if video_url is not None else None
        if video_problem:
            log.warning("task %s: refused its video link, which %s", task_id, video_problem)
            video_url = None
        if thumbnail_url is not None and (thumb_problem := url_problem(thumbnail_url)):
            log.warning("task %s: refused its thumbnail link, which %s", task_id, thumb_problem)
            thumbnail_url = None

        error = data.get("error")
        error_code: str | None = None
        error_message: str | None = None
        if isinstance(error, dict):
            code = error.get("code")
            error_code = str(code) if isinstance(code, (int, str)) and str(code) else None
            error_message = _first_str(error.get("message"))
        elif isinstance(error, str):
            error_message = _first_str(error)
        error_message = error_message or _first_str(data.get("fail_reason"))

        return cls(
            id=task_id.strip(),
            status=status,
            progress=progress,
            created_at=_as_time(data.get("created_at")),
            completed_at=_as_time(data.get("completed_at")),
            expires_at=_as_time(data.get("expires_at")),
            video_url=video_url,
            thumbnail_url=thumbnail_url,
            error_code=error_code,
            error_message=error_message,
            video_url_problem=video_problem,
            raw=data,
        )


@dataclass(frozen=True)
class Balance:
    """The token's balance in USD (the gateway also reports credits at 200 per USD)."""

    remain_usd: float | None
    used_usd: float | None
    raw: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def from_payload(cls, data: Any) -> Balance | None:
        """None for the documented failure (HTTP 200, success: false); ProtocolError for a non-object."""
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a JSON object for the balance, got {type(data).__name__}")
        if data.get("success") is False:
            return None
        per_usd = data.get("credits_per_usd") or 200

        def usd(balance_key: str, credits_key: str) -> float | None:
            value = data.get(balance_key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            credits = data.get(credits_key)
            if isinstance(credits, (int, float)) and not isinstance(credits, bool) and per_usd:
                return float(credits) / float(per_usd)
            return None

        return cls(usd("remain_balance", "remain_credits"), usd("used_balance", "used_credits"), data)


# --------------------------------------------------------------------------------------------------- retry


class GatewayRetry(Retry):
    """urllib3 Retry for GETs that pauses the process-wide limiter while it waits out a Retry-After.

    Carries `limiter` and `bucket` through `new()` (urllib3 makes a new Retry per attempt). Methods not in
    `allowed_methods` are never retried, not even on a refused connection: for POST the caller decides.
    """

    def __init__(
        self,
        *args: Any,
        limiter: RateLimiter | None = None,
        bucket: str = "query",
        sleeper: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limiter = limiter
        self.bucket = bucket
        self.sleeper = sleeper

    def new(self, **kw: Any) -> GatewayRetry:
        kw.setdefault("limiter", self.limiter)
        kw.setdefault("bucket", self.bucket)
        kw.setdefault("sleeper", self.sleeper)
        return super().new(**kw)

    def increment(
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any,
    ) -> Retry:
        if method is not None and not self._is_method_retryable(method):
            # Count as exhausted at once, so the error surfaces exactly as with no retries at all.
            spent = self.new(total=0, connect=0, read=False, status=0, other=0, redirect=0)
            return Retry.increment(spent, method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)

    def get_retry_after(self, response: Any) -> float | None:
        """Lenient (a garbled header falls back to backoff instead of raising) and capped."""
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        if seconds is None:
            return None
        return min(seconds, float(self.retry_after_max))

    def sleep_for_retry(self, response: Any) -> bool:
        seconds = self.get_retry_after(response)
        if not seconds:
            return False
        if self.limiter is not None:
            # First stop everyone else in the process, then wait ourselves.
            self.limiter.pause(seconds, self.bucket)
        log.info("gateway asked to retry after %.2f s (HTTP %s)", seconds, getattr(response, "status", "?"))
        self.sleeper(seconds)
        return True

    def _sleep_backoff(self) -> None:
        backoff = self.get_backoff_time()
        if backoff > 0:
            self.sleeper(backoff)

    def sleep(self, response: Any = None) -> None:
        super().sleep(response)
        if self.limiter is not None:
            self.limiter.acquire(self.bucket)  # a retry is a call like any other


def default_retry(
    limiter: RateLimiter | None = None,
    *,
    total: int = 4,
    backoff_factor: float = 0.5,
    backoff_max: float = 8.0,
    backoff_jitter: float = 0.5,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> GatewayRetry:
    """The GET retry policy: 429/500/502/503/504 and connection errors, at most `total` retries.

    Worst case is bounded: `total` retries, each waiting at most max(backoff_max + jitter, max_retry_after).
    """
    return GatewayRetry(
        total=total,
        connect=total,
        read=min(total, 1),  # a read timeout already cost a full read timeout: retry it once at most
        status=total,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_jitter,
        respect_retry_after_header=True,
        retry_after_max=max_retry_after,  # type: ignore[arg-type]  # urllib3 annotates int, accepts float
        raise_on_status=False,  # hand back the last response so it maps to a typed GatewayError
        raise_on_redirect=False,
        limiter=limiter,
        bucket="query",
    )


# --------------------------------------------------------------------------------------------------- client

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(data: bytes, filename: str = "") -> str:
    """Content type from the bytes (what the gateway checks), then the file name, then octet-stream."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def _timed_out_reading(exc: BaseException) -> bool:
    """True for a read timeout that urllib3 wrapped after spending its retries (requests then says
    ConnectionError, though the request was sent and the answer was late)."""
    return any(isinstance(arg, MaxRetryError) and isinstance(arg.reason, ReadTimeoutError)
               for arg in getattr(exc, "args", ()))


def _never_sent(exc: BaseException) -> bool:
    """True when a requests ConnectionError happened before any byte of the request left this process."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    for arg in getattr(exc, "args", ()):
        reason = arg.reason if isinstance(arg, MaxRetryError) else arg
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)):
            return True
    return False


class GatewayClient:
    """Talks to one gateway with one key; thread-safe enough to share between the worker's threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        retry: Retry | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or ""
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self.limiter = limiter
        self.max_retry_after = float(max_retry_after)
        self.retry = self._retry_policy(retry)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=self.retry, pool_connections=4, pool_maxsize=16)
        self.session.mount(self.base_url + "/", adapter)

    def _retry_policy(self, retry: Retry | None) -> GatewayRetry:
        if retry is None:
            return default_retry(self.limiter, max_retry_after=self.max_retry_after)
        if isinstance(retry, GatewayRetry):
            return retry.new(
                limiter=retry.limiter or self.limiter,
                allowed_methods=frozenset({"GET"}),
                retry_after_max=min(retry.retry_after_max, self.max_retry_after),
            )
        # A plain Retry: keep its counts and backoff, but always GET-only and with the limiter hook.
        return GatewayRetry(
            total=retry.total, connect=retry.connect, read=retry.read, status=retry.status, other=retry.other,
            redirect=0, allowed_methods=frozenset({"GET"}),
            status_forcelist=retry.status_forcelist or RETRY_STATUSES,
            backoff_factor=retry.backoff_factor, backoff_max=retry.backoff_max,
            backoff_jitter=retry.backoff_jitter, respect_retry_after_header=retry.respect_retry_after_header,
            retry_after_max=min(retry.retry_after_max, self.max_retry_after),  # type: ignore[arg-type]
            raise_on_status=False, raise_on_redirect=False, limiter=self.limiter, bucket="query",
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "empty"
        return f"GatewayClient(base_url={self.base_url!r}, api_key=<{key}>, timeout={self.timeout!r})"

    # -- transport ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _request(
        self, method: str, path: str, *, bucket: str, operation: str, **kwargs: Any,
    ) -> requests.Response:
        """One call: limiter, timeouts, transport errors mapped; a non-2xx raises its GatewayError."""
        url = self.base_url + path
        started = time.monotonic()
        try:
            with self.limiter.slot(bucket) if self.limiter is not None else nullcontext():
                resp = self.session.request(method, url, headers=self._headers(), timeout=self.timeout,
                                            **kwargs)
        except requests.exceptions.ReadTimeout as exc:
            log.warning("%s %s: no answer within %.1f s", method, path, self.timeout[1])
            raise GatewayTimeout(
                f"no answer within {self.timeout[1]:g} s", operation=operation,
            ) from _scrub(exc, self._api_key)
        except requests.exceptions.ConnectionError as exc:
            if _timed_out_reading(exc):
                log.warning("%s %s: no answer within %.1f s, retries spent", method, path, self.timeout[1])
                raise GatewayTimeout(
                    f"no answer within {self.timeout[1]:g} s", operation=operation,
                ) from _scrub(exc, self._api_key)
            if operation == "submit" and not _never_sent(exc):
                log.warning("%s %s: connection dropped after sending", method, path)
                raise GatewayTimeout(
                    "the connection dropped before the gateway answered", operation=operation,
                ) from _scrub(exc, self._api_key)
            log.warning("%s %s: gateway unreachable (%s)", method, path, type(exc).__name__)
            words = (f"could not reach the gateway at {self.base_url}" if _never_sent(exc)
                     else "the connection dropped before the gateway answered")
            raise GatewayUnavailable(words, operation=operation) from _scrub(exc, self._api_key)
        except requests.exceptions.RequestException as exc:
            words = f"request to the gateway failed: {type(exc).__name__}"
            if operation == "submit":
                # We cannot tell whether the gateway accepted it, so the run must become "unknown",
                # never a draft that would be sent again (a possible double charge).
                raise GatewayTimeout(words, operation=operation) from _scrub(exc, self._api_key)
            raise GatewayUnavailable(words, operation=operation) from _scrub(exc, self._api_key)
        log.debug("%s %s -> %s in %.3f s", method, path, resp.status_code, time.monotonic() - started)
        if not 200 <= resp.status_code < 300:
            err = error_from_response(resp, operation)
            if isinstance(err, RateLimited) and self.limiter is not None:
                wait = err.retry_after if err.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
                self.limiter.pause(min(wait, self.max_retry_after), bucket)
            log.warning("%s %s -> HTTP %s %s", method, path, resp.status_code, type(err).__name__)
            raise err
        return resp

    def _json(self, resp: requests.Response, operation: str) -> Any:
        try:
            return resp.json()
        except ValueError as exc:
            snippet = _text_summary(redact(resp.text or "", self._api_key))
            raise ProtocolError(
                f"malformed JSON in a {resp.status_code} answer: {snippet[:80]!r}",
                status=resp.status_code, body=redact(resp.text or "", self._api_key)[:_BODY_KEEP],
                operation=operation,
            ) from exc

    def _task(self, resp: requests.Response, operation: str) -> Task:
        data = self._json(resp, operation)
        if isinstance(data, dict) and "error" in data and "status" not in data:
            raise error_from_response(resp, operation)
        try:
            task = Task.from_payload(data)
        except ProtocolError as exc:
            exc.status, exc.operation = resp.status_code, operation
            raise
        if task.error_message and self._api_key and self._api_key in task.error_message:
            # A gateway echoing the bearer token in a failure text must not carry it into the ledger.
            task = dataclasses.replace(task, error_message=redact(task.error_message, self._api_key))
        return task

    # -- API ----------------------------------------------------------------------------------------

    def submit(self, request: Any) -> Task:
        """POST a generation; never retried (a timeout here raises GatewayTimeout: outcome unknown)."""
        payload = request.to_payload() if hasattr(request, "to_payload") else dict(request)
        resp = self._request("POST", SUBMIT_PATH, bucket="submit", operation="submit", json=payload)
        task = self._task(resp, "submit")
        log.info("submitted task %s (%s)", task.id, task.status)
        return task

    def get_task(self, task_id: str) -> Task:
        """GET a task's status; retried on 429/5xx/connection errors by the mounted Retry."""
        if not task_id or not task_id.strip():
            raise ValueError("task_id is empty")
        path = TASK_PATH.format(task_id=quote(task_id.strip(), safe=""))
        resp = self._request("GET", path, bucket="query", operation="query")
        return self._task(resp, "query")

    def upload_image(self, data: bytes, filename: str, content_type: str | None = None) -> str:
        """Upload an image (multipart field `file`) and return its public URL.

        Not retried by the transport: it is a POST, and a duplicate upload would only leave a stray file,
        but a silent re-send of up to 10 MB on a flaky link is not worth it; callers dedupe by sha256.
        """
        kind = content_type or sniff_image_type(data, filename)
        files = {"file": (filename or "image", data, kind)}
        resp = self._request("POST", UPLOAD_PATH, bucket="upload", operation="upload", files=files)
        body = self._json(resp, "upload")
        if not isinstance(body, dict):
            raise ProtocolError(
                "upload answer is not a JSON object", status=resp.status_code, operation="upload",
            )
        if body.get("success") is False:
            raise error_from_response(resp, "upload")
        inner = body.get("data")
        url = _first_str(inner.get("url") if isinstance(inner, dict) else None, body.get("url"))
        if url is None:
            raise ProtocolError("upload answer has no data.url", status=resp.status_code, operation="upload")
        problem = url_problem(url)
        if problem:
            raise ProtocolError(f"the uploaded image's link {problem}", status=resp.status_code,
                                operation="upload")
        return url

    def balance(self) -> Balance | None:
        """The token's balance; None when the gateway says it cannot tell (HTTP 200, success: false)."""
        resp = self._request("GET", BALANCE_PATH, bucket="query", operation="balance")
        return Balance.from_payload(self._json(resp, "balance"))


def _scrub(exc: BaseException, secret: str) -> BaseException | None:
    """The cause to chain, unless its text would carry the key (it never should; headers are not in it)."""
    if secret and len(secret) >= 4 and secret in repr(exc):
        return None
    return exc


__all__ = [
    "BALANCE_PATH",
    "STATUSES",
    "SUBMIT_PATH",
    "TASK_PATH",
    "UPLOAD_PATH",
    "BadRequest",
    "Balance",
    "ContentPolicy",
    "GatewayClient",
    "GatewayError",
    "GatewayRetry",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InsufficientBalance",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "ServerError",
    "Task",
    "Unauthorized",
    "UploadRejected",
    "default_retry",
    "error_from_response",
    "parse_retry_after",
    "sniff_image_type",
    "user_message",
]
