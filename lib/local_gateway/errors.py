"""The error bodies ToAPIs publishes (docs/api-contract.md §5.2), one constructor per documented case.

The real gateway mixes four envelopes; the emulator uses the defaults docs/api-contract.md §5.2 infers for
each status so that a client has to parse all of them.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by handlers; rendered as JSON with `status`, `body` and extra `headers`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid_request(message: str, param: str | None) -> ApiError:
    """400, variant B: string code plus the offending parameter."""
    return ApiError(
        400,
        {
            "error": {
                "code": "invalid_request",
                "message": message,
                "param": param,
                "type": "invalid_request_error",
            }
        },
    )


def unauthorized() -> ApiError:
    """401, variant A."""
    return ApiError(
        401,
        {
            "error": {
                "code": 401,
                "message": "Authentication failed, please check your API key",
                "type": "authentication_error",
            }
        },
    )


def insufficient_quota() -> ApiError:
    """402, variant A (the table calls it insufficient_quota)."""
    return ApiError(
        402,
        {
            "error": {
                "code": 402,
                "message": "Insufficient account balance, please top up",
                "type": "payment_required",
            }
        },
    )


def forbidden(message: str = "The video URL has expired; submit a new task to regenerate it") -> ApiError:
    """403 on an expired file URL (not published; variant A by analogy)."""
    return ApiError(403, {"error": {"code": 403, "message": message, "type": "forbidden_error"}})


def not_found(message: str = "Task not found") -> ApiError:
    """404, variant A."""
    return ApiError(404, {"error": {"code": 404, "message": message, "type": "not_found_error"}})


def content_policy(
    message: str = "Content policy violation: the request was rejected by the safety system",
) -> ApiError:
    """422 content_policy_violation."""
    return ApiError(422, {"error": {"code": "content_policy_violation", "message": message}})


def rate_limited(
    retry_after: int, headers: dict[str, str], message: str = "Async task request rate exceeded"
) -> ApiError:
    """429, variant C, with Retry-After and the X-RateLimit-* headers."""
    return ApiError(
        429,
        {"error": {"code": "rate_limit_exceeded", "message": message}},
        {**headers, "Retry-After": str(int(retry_after))},
    )


def server_error(status: int = 500, message: str = "Internal server error") -> ApiError:
    if status == 503:
        return ApiError(
            503,
            {
                "error": {
                    "code": "rate_limit_unavailable",
                    "message": "The async task submit limiter is temporarily unavailable",
                }
            },
        )
    return ApiError(status, {"error": {"code": "internal_error", "message": message}})


def upload_rejected(message: str) -> ApiError:
    """400, envelope D (upload endpoints)."""
    return ApiError(400, {"success": False, "message": message})


def for_status(status: int, *, category: str, retry_after: int, rate_headers: dict[str, str]) -> ApiError:
    """The body this gateway would send for `status` on `category`: used by injected faults."""
    if status == 200 and category == "balance":
        return ApiError(200, {"success": False, "message": "Failed to get user quota"})
    if category == "upload" and status == 400:
        return upload_rejected("Unsupported image type. Allowed: JPEG, PNG, WebP, GIF")
    table = {
        400: lambda: invalid_request("Invalid request parameters", None),
        401: unauthorized,
        402: insufficient_quota,
        403: forbidden,
        404: not_found,
        422: content_policy,
        429: lambda: rate_limited(retry_after, rate_headers),
    }
    if status in table:
        return table[status]()
    if status >= 500:
        return server_error(status)
    return ApiError(status, {"error": {"code": status, "message": f"HTTP {status}", "type": "error"}})
