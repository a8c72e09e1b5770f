"""The ToAPIs video gateway client (and the embedded local gateway, which speaks the same API).

Three promises the rest of the app builds on:
- every documented response shape reads into one `Task` (task.py), and everything else raises
  `ProtocolError`;
- every failure is one `GatewayError` subclass keyed by HTTP status, with words for the user
  (`user_message`, errors.py), and the API key never appears in any message, repr, log line or URL;
- every call is one HTTP attempt (client.py says why): the worker schedules status checks itself, and
  the submit POST is never re-sent, because a blind re-send can bill twice.

Import from `lib.gateway`; the modules are errors → task → client, each importing only the ones before.
"""
from __future__ import annotations

from lib.gateway.client import (
    BALANCE_PATH,
    SUBMIT_PATH,
    TASK_PATH,
    UPLOAD_PATH,
    GatewayClient,
    sniff_image_type,
)
from lib.gateway.errors import (
    BadRequest,
    ContentPolicy,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InsufficientBalance,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    Unauthorized,
    UploadRejected,
    error_from_response,
    parse_retry_after,
    user_message,
)
from lib.gateway.task import STATUSES, Balance, Task

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
    "error_from_response",
    "parse_retry_after",
    "sniff_image_type",
    "user_message",
]
