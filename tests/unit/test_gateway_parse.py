"""Pure parsing: every response sample of docs/api-contract.md §3–§8, every error envelope, Retry-After,
words.

The JSON literals below are copied from docs/api-contract.md (quoted there from the ToAPIs docs).
"""
from __future__ import annotations

import email.utils
import io
import json
import time
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from lib.gateway import (
    BadRequest,
    Balance,
    ContentPolicy,
    GatewayClient,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InsufficientBalance,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    Task,
    Unauthorized,
    UploadRejected,
    error_from_response,
    parse_retry_after,
    sniff_image_type,
    user_message,
)

KEY = "sk-live-SECRET-4f9a8b7c6d5e"

# ------------------------------------------------------------------------ samples (docs/api-contract.md)

SUBMIT_V1 = {  # §3.4
    "id": "video_01J9HA7JPQ9A0Z6JZ3V8M9W6PZ",
    "object": "generation.task",
    "model": "kling-v3",
    "status": "queued",
    "progress": 0,
    "created_at": 1768380224,
    "metadata": {},
}
SUBMIT_PLACEHOLDER = {"id": "<string>", "object": "<string>", "model": "<string>", "status": "<string>",
                      "created_at": 123}  # §3.4, auto-generated V2/V3 placeholder
STATUS_QUEUED = {  # §4.1
    "id": "video_7497f4d5-3a88-44c7-923a-967fa7d941a0",
    "object": "generation.task",
    "model": "sora-2",
    "status": "queued",
    "progress": 0,
    "created_at": 1768380222,
}
STATUS_IN_PROGRESS = {
    "id": "video_7497f4d5-3a88-44c7-923a-967fa7d941a0",
    "object": "generation.task",
    "model": "sora-2",
    "status": "in_progress",
    "progress": 65,
    "created_at": 1768380222,
}
STATUS_COMPLETED_S1 = {
    "id": "tsk_vid_01KRDG4S50XXXXXXXXXXXXXXX",
    "object": "generation.task",
    "model": "seedance-2",
    "status": "completed",
    "progress": 100,
    "created_at": 1778569600,
    "completed_at": 1778569900,
    "expires_at": 1778656300,
    "result": {
        "type": "video",
        "data": [
            {
                "url": "https://files.toapis.com/videos/tsk_vid_01KRDG4S50XXXXXXXXXXXXXXX/********_********.mp4",
                "format": "mp4",
            }
        ],
    },
}
STATUS_COMPLETED_S2 = {
    "id": "video_7497f4d5-3a88-44c7-923a-967fa7d941a0",
    "object": "generation.task",
    "model": "sora-2",
    "status": "completed",
    "progress": 100,
    "created_at": 1768380222,
    "completed_at": 1768380514,
    "expires_at": 1768466914,
    "result": {
        "type": "video",
        "data": [
            {
                "url": "https://files.dashlyai.cc/sora/7712af45-ca35-4a15-b800-f20ea623665b.mp4",
                "format": "mp4",
            }
        ],
    },
}
STATUS_COMPLETED_CN = {**STATUS_COMPLETED_S2, "client_business_id": "order_20260428_001"}
STATUS_FAILED = {
    "id": "video_7497f4d5-3a88-44c7-923a-967fa7d941a0",
    "object": "generation.task",
    "model": "sora-2",
    "status": "failed",
    "progress": 0,
    "created_at": 1768380222,
    "error": {
        "code": "generation_failed",
        "message": "Generation failed: Content violates the content policy",
    },
}
STATUS_FAILED_UPSTREAM = {**STATUS_FAILED, "error": {
    "code": "generation_failed", "message": "call upstream API failed: upstream returned status 422"}}

# §4.3 / §4.2 notes: defensive shapes the docs' own sample code reads
LEGACY_SUBMITTED = {"id": "task_01K9S419324DREZFBWNSVXYR6H", "status": "submitted", "created_at": 1768380224}
LEGACY_FLAT_COMPLETED = {
    "id": "tsk_01abcdef", "status": "completed", "progress": "100%",
    "url": "https://files.toapis.com/videos/tsk_01abcdef.mp4",
    "thumbnail": "https://files.toapis.com/thumbs/tsk_01abcdef.jpg",
    "duration": 5,
}
FAIL_REASON_ONLY = {"id": "tsk_01abcdef", "status": "failed", "fail_reason": "upstream timeout"}
PROGRESS_STRING = {"id": "tsk_01abcdef", "status": "in_progress", "progress": "65%"}

# §5.2 error envelopes
ENV_A = [
    (401, {"error": {"code": 401, "message": "Authentication failed, please check your API key",
                     "type": "authentication_error"}}),
    (404, {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}),
    (400, {"error": {"code": 400, "message": "Invalid request: timestamps range must be between 1-3 seconds",
                     "type": "invalid_request_error"}}),
    (402, {"error": {"code": 402, "message": "Insufficient account balance, please top up",
                     "type": "payment_required"}}),
    (429, {"error": {"code": 429, "message": "Too many requests, please try again later",
                     "type": "rate_limit_error"}}),
]
ENV_B = [
    (400, {"error": {"code": "invalid_request", "message": "The 'prompt' field is required.",
                     "param": "prompt", "type": "invalid_request_error"}}),
    (401, {"error": {"code": "unauthorized", "message": "Invalid API key", "type": "authentication_error"}}),
]
ENV_C = [
    (429, {"error": {"code": "rate_limit_exceeded", "message": "Async task request rate exceeded"}}),
    (503, {"error": {"code": "rate_limit_unavailable",
                     "message": "The async task submit limiter is temporarily unavailable"}}),
]
ENV_D = [
    (400, {"success": False, "message": "Image too large. Maximum size is 10MB"}),
    (400, {"success": False, "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"}),
]
# emulator defaults of §5.2 for 422 and 5xx
ENV_422 = {"error": {"code": "content_policy_violation", "message": "Content policy violation"}}
ENV_500 = {"error": {"code": "internal_error", "message": "Internal server error"}}

UPLOAD_OK = {  # §6
    "success": True,
    "message": "",
    "data": {
        "id": "upload_abc12345",
        "url": "https://files.toapis.com/uploads/123/1737568800_abc12345.jpg",
        "mime_type": "image/jpeg",
        "size": 89234,
    },
}
BALANCE_OK = {"success": True, "remain_balance": 100.0, "used_balance": 25.5, "remain_credits": 20000,
              "used_credits": 5100, "credits_per_usd": 200, "unlimited_quota": False}  # §8
BALANCE_FAIL = {"success": False, "message": "Failed to get user quota"}


def make_response(
    status: int, body: Any = None, *, headers: dict[str, str] | None = None, text: str | None = None,
    key: str = KEY, reason: str = "",
) -> requests.Response:
    """A real requests.Response as the transport would hand it over (with the sent request attached)."""
    resp = requests.Response()
    resp.status_code = status
    resp.reason = reason
    raw = text if text is not None else ("" if body is None else json.dumps(body))
    resp._content = raw.encode("utf-8")
    resp.encoding = "utf-8"
    resp.headers = CaseInsensitiveDict(headers or {})
    resp.request = requests.Request(
        "GET", "https://toapis.com/v1/videos/generations/x", headers={"Authorization": f"Bearer {key}"},
    ).prepare()
    return resp


# ---------------------------------------------------------------------------------- Task


def test_submit_response_v1() -> None:
    task = Task.from_payload(SUBMIT_V1)
    assert (task.id, task.status, task.progress, task.created_at) == (
        "video_01J9HA7JPQ9A0Z6JZ3V8M9W6PZ", "queued", 0, 1768380224.0)
    assert not task.terminal
    assert task.video_url is None and task.error_code is None and task.expires_at is None
    assert task.raw is SUBMIT_V1


def test_submit_placeholder_without_progress_reads_progress_0_but_rejects_the_placeholder_status() -> None:
    with pytest.raises(ProtocolError, match="unknown status '<string>'"):
        Task.from_payload(SUBMIT_PLACEHOLDER)
    task = Task.from_payload({**SUBMIT_PLACEHOLDER, "status": "queued"})
    assert task.progress == 0 and task.created_at == 123.0


def test_status_queued_and_in_progress() -> None:
    queued = Task.from_payload(STATUS_QUEUED)
    running = Task.from_payload(STATUS_IN_PROGRESS)
    assert (queued.status, queued.progress) == ("queued", 0)
    assert (running.status, running.progress, running.terminal) == ("in_progress", 65, False)


@pytest.mark.parametrize(("sample", "url", "created", "completed", "expires"), [
    (STATUS_COMPLETED_S1,
     "https://files.toapis.com/videos/tsk_vid_01KRDG4S50XXXXXXXXXXXXXXX/********_********.mp4",
     1778569600, 1778569900, 1778656300),
    (STATUS_COMPLETED_S2, "https://files.dashlyai.cc/sora/7712af45-ca35-4a15-b800-f20ea623665b.mp4",
     1768380222, 1768380514, 1768466914),
    (STATUS_COMPLETED_CN, "https://files.dashlyai.cc/sora/7712af45-ca35-4a15-b800-f20ea623665b.mp4",
     1768380222, 1768380514, 1768466914),
])
def test_status_completed(sample: dict, url: str, created: int, completed: int, expires: int) -> None:
    task = Task.from_payload(sample)
    assert task.status == "completed" and task.terminal and task.progress == 100
    assert task.video_url == url
    assert (task.created_at, task.completed_at, task.expires_at) == (created, completed, expires)
    assert task.error_code is None and task.error_message is None
    assert task.thumbnail_url is None


@pytest.mark.parametrize(("sample", "message"), [
    (STATUS_FAILED, "Generation failed: Content violates the content policy"),
    (STATUS_FAILED_UPSTREAM, "call upstream API failed: upstream returned status 422"),
])
def test_status_failed(sample: dict, message: str) -> None:
    task = Task.from_payload(sample)
    assert task.status == "failed" and task.terminal
    assert task.error_code == "generation_failed"
    assert task.error_message == message
    assert task.video_url is None


def test_legacy_submitted_is_queued() -> None:
    task = Task.from_payload(LEGACY_SUBMITTED)
    assert task.status == "queued" and task.progress == 0 and task.id == "task_01K9S419324DREZFBWNSVXYR6H"


def test_legacy_flat_completed_shape() -> None:
    task = Task.from_payload(LEGACY_FLAT_COMPLETED)
    assert task.status == "completed" and task.progress == 100
    assert task.video_url == "https://files.toapis.com/videos/tsk_01abcdef.mp4"
    assert task.thumbnail_url == "https://files.toapis.com/thumbs/tsk_01abcdef.jpg"


def test_fail_reason_is_the_message_when_error_is_absent() -> None:
    task = Task.from_payload(FAIL_REASON_ONLY)
    assert (task.status, task.error_code, task.error_message) == ("failed", None, "upstream timeout")


@pytest.mark.parametrize(("progress", "expected"), [
    ("65%", 65), ("65", 65), (" 40 % ", 40), (65.4, 65), (150, 100), (-3, 0), (None, 0), ("soon", 0),
    (True, 0),
])
def test_progress_forms(progress: Any, expected: int) -> None:
    assert Task.from_payload({**PROGRESS_STRING, "progress": progress}).progress == expected


def test_missing_progress_on_a_completed_task_is_100() -> None:
    data = {k: v for k, v in STATUS_COMPLETED_S1.items() if k != "progress"}
    assert Task.from_payload(data).progress == 100


def test_numeric_error_code_and_string_error_and_iso_times() -> None:
    task = Task.from_payload({"id": 42, "status": "FAILED", "error": {"code": 500, "message": "boom"},
                              "created_at": "2026-01-14T08:43:44Z", "completed_at": "1768380514"})
    assert task.id == "42" and task.status == "failed" and task.error_code == "500"
    assert task.created_at == 1768380224.0 and task.completed_at == 1768380514.0
    assert Task.from_payload({"id": "t", "status": "failed", "error": "quota"}).error_message == "quota"


@pytest.mark.parametrize(("data", "words"), [
    ([STATUS_QUEUED], "expected a JSON object for a task, got list"),
    ("queued", "expected a JSON object for a task, got str"),
    (None, "got NoneType"),
    ({"status": "queued"}, "no 'id'"),
    ({"id": "", "status": "queued"}, "no 'id'"),
    ({"id": "t1"}, "no readable 'status'"),
    ({"id": "t1", "status": 3}, "no readable 'status'"),
    ({"id": "t1", "status": "paused"}, "unknown status 'paused'"),
    ({"id": "t1", "status": "SUCCESS"}, "unknown status 'SUCCESS'"),
])
def test_unreadable_shapes_raise_protocol_error(data: Any, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        Task.from_payload(data)


def test_task_repr_and_equality_leave_out_the_raw_payload() -> None:
    a = Task.from_payload(STATUS_COMPLETED_S1)
    b = Task.from_payload({**STATUS_COMPLETED_S1, "model": "other"})
    assert "raw" not in repr(a) and "seedance" not in repr(a)
    assert a == b and hash(a) == hash(b)


# ---------------------------------------------------------------------------------- balance


def test_balance_success_and_documented_failure() -> None:
    bal = Balance.from_payload(BALANCE_OK)
    assert bal is not None and (bal.remain_usd, bal.used_usd) == (100.0, 25.5)
    assert Balance.from_payload(BALANCE_FAIL) is None
    credits_only = Balance.from_payload({"success": True, "remain_credits": 20000, "used_credits": 5100})
    assert credits_only is not None and (credits_only.remain_usd, credits_only.used_usd) == (100.0, 25.5)
    with pytest.raises(ProtocolError):
        Balance.from_payload([1, 2])


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("status", "body"), ENV_A + ENV_B + ENV_C)
def test_documented_error_envelopes(status: int, body: dict) -> None:
    err = error_from_response(make_response(status, body))
    expected = {400: BadRequest, 401: Unauthorized, 402: InsufficientBalance, 404: NotFound, 429: RateLimited,
                503: ServerError}[status]
    assert type(err) is expected
    assert err.status == status
    assert err.code == body["error"]["code"]  # int or str, as sent
    assert err.message == body["error"]["message"]
    assert err.type == body["error"].get("type")
    assert err.param == body["error"].get("param")
    assert err.message in str(err) and f"HTTP {status}" in str(err)
    assert err.body == json.dumps(body)


@pytest.mark.parametrize(("status", "body"), ENV_D)
def test_envelope_d_is_upload_rejected(status: int, body: dict) -> None:
    err = error_from_response(make_response(status, body), "upload")
    assert type(err) is UploadRejected and isinstance(err, BadRequest)
    assert err.message == body["message"] and err.code is None and err.operation == "upload"


def test_envelope_d_on_http_200_is_still_upload_rejected() -> None:
    err = error_from_response(make_response(200, ENV_D[0][1]), "upload")
    assert type(err) is UploadRejected and err.status == 200


def test_422_and_500_emulator_envelopes() -> None:
    policy = error_from_response(make_response(422, ENV_422))
    server = error_from_response(make_response(500, ENV_500))
    assert type(policy) is ContentPolicy and policy.code == "content_policy_violation"
    assert type(server) is ServerError and server.code == "internal_error"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_html_error_page_is_read_gracefully(status: int) -> None:
    html = (f"<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway"
            "</h1></center><hr><center>nginx</center></body></html>")
    err = error_from_response(make_response(status, text=html, reason="Bad Gateway"))
    assert type(err) is ServerError and err.status == status
    assert err.message == f"{status} Bad Gateway"
    assert err.code is None and err.body == html


def test_plain_text_and_empty_bodies() -> None:
    err = error_from_response(make_response(404, text="404 page not found", reason="Not Found"))
    assert type(err) is NotFound and "404 page not found" in err.message
    empty = error_from_response(make_response(401, text="", reason="Unauthorized"))
    assert type(empty) is Unauthorized and empty.message == "Unauthorized" and empty.body is None
    bare = error_from_response(make_response(500, text=""))
    assert bare.message == ServerError.default_message


def test_unmapped_status_is_a_plain_gateway_error_and_json_list_body_is_tolerated() -> None:
    err = error_from_response(make_response(403, [1, 2], reason="Forbidden"))
    assert type(err) is GatewayError and err.status == 403 and err.message == "Forbidden"


def test_2xx_with_error_envelope_is_a_protocol_error() -> None:
    err = error_from_response(make_response(200, {"error": {"code": 500, "message": "upstream hiccup"}}))
    assert type(err) is ProtocolError and err.message == "upstream hiccup"


@pytest.mark.parametrize(("header", "expected"), [
    ("2", 2.0), (" 7 ", 7.0), ("1.5", 1.5), ("0", 0.0), ("-4", 0.0), ("", None), ("soon", None), (None, None),
    ("nan", None), ("inf", None),
])
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_768_380_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # in the past
    live = parse_retry_after(email.utils.formatdate(time.time() + 120, usegmt=True))
    assert live is not None and 118 <= live <= 121


def test_retry_after_is_kept_on_the_error() -> None:
    err = error_from_response(make_response(429, ENV_C[0][1], headers={"Retry-After": "3"}))
    assert isinstance(err, RateLimited) and err.retry_after == 3.0
    dated = email.utils.formatdate(time.time() + 10, usegmt=True)
    err2 = error_from_response(make_response(503, ENV_C[1][1], headers={"Retry-After": dated}))
    assert isinstance(err2, ServerError) and 8 <= (err2.retry_after or 0) <= 11
    assert error_from_response(make_response(429, ENV_C[0][1])).retry_after is None


# ---------------------------------------------------------------------------------- words


@pytest.mark.parametrize(("err", "words"), [
    (ContentPolicy("blocked", status=422), ["Rephrase", "not billed"]),
    (InsufficientBalance(status=402), ["Top up", "nothing was billed"]),
    (RateLimited(status=429, retry_after=7), ["waiting 7 s", "Nothing is lost"]),
    (RateLimited(status=429), ["waiting a moment", "Nothing is lost"]),
    (ServerError(status=502), ["gateway is having trouble", "HTTP 502", "retried automatically"]),
    (ServerError(status=500, operation="submit"), ["did not take the submit", "Try again"]),
    (GatewayUnavailable(operation="query"), ["could not be reached", "retried automatically"]),
    (GatewayUnavailable(operation="submit"), ["not sent", "nothing was billed"]),
    (GatewayUnavailable("connection dropped", operation="upload"),
     ["upload did not get through", "try again"]),
    (GatewayTimeout(operation="submit"), ["outcome is unknown", "task id", "re-submit knowingly"]),
    (GatewayTimeout(operation="query"), ["did not answer in time", "asked again"]),
    (Unauthorized(status=401), ["API key", "TOAPIS_API_KEY"]),
    (NotFound(status=404), ["does not know this task id"]),
    (BadRequest("The 'prompt' field is required.", status=400, param="prompt"),
     ["'prompt' field", "Nothing"]),
    (UploadRejected("Image too large. Maximum size is 10MB", status=400), ["upload was refused", "10 MB"]),
    (ProtocolError("bad json"), ["cannot read", "bad json"]),
    (GatewayError("teapot", status=418), ["HTTP 418", "teapot"]),
])
def test_user_message_says_what_happened_and_what_to_do(err: GatewayError, words: list[str]) -> None:
    text = user_message(err)
    for word in words:
        assert word in text, (word, text)


def test_outcome_unknown_only_for_a_submit_timeout() -> None:
    assert GatewayTimeout(operation="submit").outcome_unknown
    assert not GatewayTimeout(operation="query").outcome_unknown
    assert not GatewayUnavailable(operation="submit").outcome_unknown
    assert not ServerError(status=500, operation="submit").outcome_unknown


# ---------------------------------------------------------------------------------- the key stays secret


def test_key_echoed_by_the_server_is_redacted_everywhere() -> None:
    body = {"error": {"code": "unauthorized", "message": f"Invalid API key {KEY}",
                      "type": "authentication_error"}}
    err = error_from_response(make_response(401, body))
    for text in (str(err), repr(err), err.message, err.body or "", user_message(err)):
        assert KEY not in text
    assert "***" in err.message


def test_client_repr_has_no_key() -> None:
    client = GatewayClient("https://toapis.com/", KEY)
    assert KEY not in repr(client) and KEY not in str(client)
    assert "api_key=<set>" in repr(client) and "https://toapis.com" in repr(client)
    assert "api_key=<empty>" in repr(GatewayClient("http://127.0.0.1:1", ""))
    with pytest.raises(ValueError, match="http"):
        GatewayClient("toapis.com", KEY)


def _image(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 40, 40)).save(out, format=fmt)
    return out.getvalue()


def test_sniff_image_type() -> None:
    """The bytes decide (Pillow reads the header), then the file name; a fake header is not an image."""
    assert sniff_image_type(_image("JPEG"), "x.png") == "image/jpeg"
    assert sniff_image_type(_image("PNG")) == "image/png"
    assert sniff_image_type(_image("GIF")) == "image/gif"
    assert sniff_image_type(_image("WEBP")) == "image/webp"
    assert sniff_image_type(b"\x89PNG\r\n\x1a\nrest", "x.bin") == "application/octet-stream"
    assert sniff_image_type(_image("BMP"), "a.bmp") == "image/bmp"  # an image, not one the gateway takes
    assert sniff_image_type(b"hello", "notes.txt") == "text/plain"
    assert sniff_image_type(b"hello") == "application/octet-stream"
