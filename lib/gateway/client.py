"""HTTP client for the ToAPIs video gateway (and the embedded local gateway, which speaks the same API).

Every call is exactly one HTTP attempt: no transport retries, for GET or POST.
Why (decided in issue 15): the only GETs are status checks and the balance. The worker already
reschedules a failed status check with its own backoff and honours Retry-After (lib/worker.py), noting
the fault on the run in words; a urllib3 retry inside one of its pool threads would block that thread
for up to minutes and double the retry logic. The pages' GETs (the balance probe, confirming a task id
to recover) run while a page draws, where one quick answer in words ("try again") beats a page that
hangs through four backoffs. The submit POST must never be re-sent blindly (a double charge): a submit
whose outcome is unknown raises `GatewayTimeout` with `outcome_unknown`, and the ledger decides.
A 429 still pauses the process-wide limiter (capped at `max_retry_after`), so no thread sends into
that bucket before the gateway's Retry-After.
"""
from __future__ import annotations

import dataclasses
import logging
import mimetypes
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from lib.gateway.errors import (
    _BODY_KEEP,
    GatewayTimeout,
    GatewayUnavailable,
    ProtocolError,
    RateLimited,
    _text_summary,
    error_from_response,
    redact,
)
from lib.gateway.task import Balance, Task, _first_str
from lib.image_type import gateway_type
from lib.ratelimit import Limiter
from lib.safe_fetch import url_problem

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lib.contract import VideoRequest

log = logging.getLogger(__name__)

SUBMIT_PATH = "/v1/videos/generations"
TASK_PATH = "/v1/videos/generations/{task_id}"
UPLOAD_PATH = "/v1/uploads/images"
BALANCE_PATH = "/v1/balance"

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
DEFAULT_MAX_RETRY_AFTER = 60.0
# Used when a 429 carries no (readable) Retry-After: long enough to leave the gateway's 1 s window.
DEFAULT_RATE_LIMIT_PAUSE = 1.0
# One attempt per call (see the module docstring); urllib3 then wraps a late answer in MaxRetryError,
# which `_timed_out_reading` reads back as a timeout.
_ONE_ATTEMPT = Retry(total=0)


def sniff_image_type(data: bytes, filename: str = "") -> str:
    """Content type from the bytes (what the gateway checks; lib/image_type.py), then the file name,
    then octet-stream."""
    kind = gateway_type(data)
    if kind is not None:
        return kind[0]
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
        limiter: Limiter | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or ""
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self.limiter = limiter
        self.max_retry_after = float(max_retry_after)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=_ONE_ATTEMPT, pool_connections=4, pool_maxsize=16)
        self.session.mount(self.base_url + "/", adapter)

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

    def submit(self, request: VideoRequest | Mapping[str, Any]) -> Task:
        """POST a generation; never retried (a timeout here raises GatewayTimeout: outcome unknown)."""
        payload = request.to_payload() if hasattr(request, "to_payload") else dict(request)
        resp = self._request("POST", SUBMIT_PATH, bucket="submit", operation="submit", json=payload)
        task = self._task(resp, "submit")
        log.info("submitted task %s (%s)", task.id, task.status)
        return task

    def get_task(self, task_id: str) -> Task:
        """GET a task's status, once: the worker schedules the next look itself (module docstring)."""
        if not task_id or not task_id.strip():
            raise ValueError("task_id is empty")
        path = TASK_PATH.format(task_id=quote(task_id.strip(), safe=""))
        resp = self._request("GET", path, bucket="query", operation="query")
        return self._task(resp, "query")

    def upload_image(self, data: bytes, filename: str, content_type: str | None = None) -> str:
        """Upload an image (multipart field `file`) and return its public URL.

        Not retried: a duplicate upload would only leave a stray file, but a silent re-send of up to
        10 MB on a flaky link is not worth it; callers dedupe by sha256 and the user may try again.
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
