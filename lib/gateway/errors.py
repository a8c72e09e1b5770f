"""Every gateway failure as one typed exception, and the words a user reads for it.

Why one module: the worker, the pages and the tests all branch on the same classes (keyed by HTTP status,
see `_STATUS_CLASSES`), and the key must never reach any message, so the redaction lives next to the
parsing of the four documented error envelopes (docs/api-contract.md §5.2).
"""
from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any, ClassVar

import requests

from lib.contract import MAX_IMAGE_MB

_BODY_KEEP = 2000  # characters of an error body kept on the exception (HTML pages can be huge)


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
