"""GatewayClient over real HTTP against the embedded local gateway (fixture `local_gateway`).

Faults are injected through the gateway's control surface (`POST /__control/faults`), and the attempts
are counted in the gateway's own request log, so what is asserted is what went over the wire: one attempt
per call, never a transport retry (lib/gateway/client.py says why).
"""
from __future__ import annotations

import io
import logging
import socket
import threading
import time
from typing import Any

import pytest
import requests
from PIL import Image

from lib.contract import VideoRequest
from lib.gateway import (
    Balance,
    GatewayClient,
    GatewayTimeout,
    GatewayUnavailable,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    Task,
    Unauthorized,
    UploadRejected,
)
from lib.ratelimit import RateLimiter

PAYLOAD = {"model": "kling-v3", "prompt": "a red kite over a grey sea", "mode": "std", "duration": 5}
SLACK = 0.05  # seconds of clock/scheduling slack when comparing log timestamps


def make_client(gw: Any, *, key: str | None = None, timeout: tuple[float, float] = (5, 30),
                limiter: RateLimiter | None = None) -> GatewayClient:
    api_key = gw.key if key is None else key
    return GatewayClient(gw.url, api_key, timeout=timeout, limiter=limiter or RateLimiter())


def log_since(gw: Any, mark: int, category: str | None = None, path: str | None = None) -> list[dict]:
    """Request-log entries after position `mark` (see `log_mark`), optionally for one category/path."""
    entries = gw.requests()[mark:]
    return [e for e in entries if (category is None or e.get("category") == category)
            and (path is None or e.get("path") == path)]


def log_mark(gw: Any) -> int:
    return len(gw.requests())


def settled_log(gw: Any, mark: int, category: str, at_least: int, settle: float = 0.3) -> list[dict]:
    """The log once it holds `at_least` such entries and nothing more arrives for `settle` s.

    The gateway writes an entry when the exchange ends, and a dropped exchange ends a moment after the
    client has already moved on, so the log is read only once it has settled.
    """
    deadline = time.monotonic() + 5
    while len(log_since(gw, mark, category)) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(settle)
    return log_since(gw, mark, category)


def png_bytes(size: tuple[int, int] = (400, 300)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def wait_done(client: GatewayClient, task_id: str, limit: float = 90.0) -> Task:
    deadline = time.monotonic() + limit
    task = client.get_task(task_id)
    while not task.terminal and time.monotonic() < deadline:
        time.sleep(0.2)
        task = client.get_task(task_id)
    return task


@pytest.fixture
def task_id(local_gateway: Any) -> str:
    """An existing task to query."""
    return make_client(local_gateway).submit(PAYLOAD).id


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- the happy paths


def test_submit_then_poll_until_completed(local_gateway: Any) -> None:
    client = make_client(local_gateway)
    task = client.submit(PAYLOAD)
    assert task.id and task.status in ("queued", "in_progress") and not task.terminal
    done = wait_done(client, task.id)
    assert done.status == "completed", done
    assert done.progress == 100 and done.video_url and done.video_url.startswith("http")
    assert done.completed_at is not None and done.expires_at is not None
    assert done.expires_at > done.completed_at
    head = requests.get(done.video_url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert head.status_code in (200, 206) and head.content[4:8] == b"ftyp"  # a real MP4 box


def test_submit_accepts_a_video_request(local_gateway: Any) -> None:
    req = VideoRequest(prompt="a lighthouse at dusk", duration=5)
    task = make_client(local_gateway).submit(req)
    assert task.status in ("queued", "in_progress")
    submits = [e for e in local_gateway.requests("submit") if e.get("task_id") == task.id]
    assert len(submits) == 1


def test_upload_good_image_returns_a_url(local_gateway: Any) -> None:
    url = make_client(local_gateway).upload_image(png_bytes(), "frame.png")
    assert url.startswith("http")
    assert requests.get(url, timeout=10).status_code == 200


def test_upload_wrong_type_is_rejected_with_the_gateways_words(local_gateway: Any) -> None:
    with pytest.raises(UploadRejected) as info:
        make_client(local_gateway).upload_image(b"%PDF-1.4 definitely not an image", "doc.pdf")
    assert "Unsupported" in info.value.message and info.value.status == 400


def test_upload_over_10_mb_is_rejected(local_gateway: Any) -> None:
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (10 * 1024 * 1024 + 16)
    with pytest.raises(UploadRejected) as info:
        make_client(local_gateway).upload_image(big, "huge.jpg")
    assert "too large" in info.value.message.lower()


def test_balance(local_gateway: Any) -> None:
    bal = make_client(local_gateway).balance()
    assert isinstance(bal, Balance) and isinstance(bal.remain_usd, float)


# ---------------------------------------------------------------------------------- errors by status


def test_empty_key_is_unauthorized(local_gateway: Any, task_id: str) -> None:
    client = make_client(local_gateway, key="")
    with pytest.raises(Unauthorized) as info:
        client.get_task(task_id)
    assert info.value.status == 401 and info.value.message
    with pytest.raises(Unauthorized):
        client.submit(PAYLOAD)


def test_unknown_task_is_not_found(local_gateway: Any) -> None:
    with pytest.raises(NotFound) as info:
        make_client(local_gateway).get_task("video_does-not-exist/../x?y")
    assert info.value.status == 404
    # the odd characters were quoted into the one id segment (the log shows the decoded path): the "?y"
    # did not become a query string and the "/../" was not resolved
    entry = local_gateway.requests("query")[-1]
    assert entry["path"] == "/v1/videos/generations/video_does-not-exist/../x?y"


# ------------------------------------------------------------------------------ faults on GET: one attempt


def test_a_429_is_raised_once_and_pauses_every_thread(local_gateway: Any, task_id: str) -> None:
    """No retry inside the client: the 429 reaches the caller (the worker reschedules), and the limiter is
    paused for Retry-After, so a second thread's GET of the same bucket waits it out."""
    limiter = RateLimiter()
    client = make_client(local_gateway, limiter=limiter)
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="query", mode="status", status=429, retry_after=2, count=1)
    with pytest.raises(RateLimited) as info:
        client.get_task(task_id)
    assert info.value.retry_after == 2.0 and limiter.paused_for("query") > 1.5
    caught: list[BaseException] = []

    def other_thread() -> None:
        try:
            assert client.balance() is not None
        except BaseException as exc:  # surfaced below: an assert in a thread would be lost
            caught.append(exc)

    second = threading.Thread(target=other_thread)
    second.start()
    second.join(timeout=10)
    assert not caught and not second.is_alive()
    hits = [e for e in log_since(local_gateway, mark) if e["category"] != "control"]
    rejected = next(e for e in hits if e["status"] == 429)
    later = [e for e in hits if e is not rejected]
    assert len(later) == 1 and later[0]["t"] - rejected["t"] >= 2.0 - SLACK
    assert [e["status"] for e in log_since(local_gateway, mark, "query")] == [429]  # the task GET: once


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_on_get_is_one_attempt_then_server_error(local_gateway: Any, task_id: str, status: int) -> None:
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="query", mode="status", status=status, count=1)
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        make_client(local_gateway).get_task(task_id)
    assert info.value.status == status
    assert time.monotonic() - started < 5
    assert [e["status"] for e in settled_log(local_gateway, mark, "query", 1)] == [status]
    assert make_client(local_gateway).get_task(task_id).id == task_id  # the caller's own next look


def test_a_dropped_get_is_one_attempt_then_unavailable(local_gateway: Any, task_id: str) -> None:
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="query", mode="drop", count=1)
    with pytest.raises(GatewayUnavailable) as info:
        make_client(local_gateway).get_task(task_id)
    assert not info.value.outcome_unknown
    assert [e["status"] for e in settled_log(local_gateway, mark, "query", 1)] == [0]
    assert local_gateway.control("info")["faults"] == []  # the drop fault was used up
    assert make_client(local_gateway).get_task(task_id).id == task_id


def test_malformed_json_is_a_protocol_error(local_gateway: Any, task_id: str) -> None:
    local_gateway.control("faults", endpoint="query", mode="malformed", count=1)
    with pytest.raises(ProtocolError) as info:
        make_client(local_gateway).get_task(task_id)
    assert "malformed JSON" in info.value.message


def test_unknown_status_is_a_protocol_error(local_gateway: Any, task_id: str) -> None:
    local_gateway.control("faults", endpoint="query", mode="unknown_status", count=1)
    with pytest.raises(ProtocolError, match="unknown status"):
        make_client(local_gateway).get_task(task_id)


def test_refused_connection_is_unavailable_and_bounded(local_gateway: Any) -> None:
    client = GatewayClient(f"http://127.0.0.1:{closed_port()}", "k", timeout=(1, 1))
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        client.get_task("t1")
    with pytest.raises(GatewayUnavailable) as info:
        client.submit(PAYLOAD)
    assert not info.value.outcome_unknown  # nothing was sent: safe to submit again
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------------- the submit POST


def test_submit_with_a_500_is_not_retried(local_gateway: Any) -> None:
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="submit", mode="status", status=500, count=1)
    with pytest.raises(ServerError):
        make_client(local_gateway).submit(PAYLOAD)
    assert len(settled_log(local_gateway, mark, "submit", 1)) == 1


def test_submit_with_a_dropped_connection_is_not_retried_and_outcome_unknown(local_gateway: Any) -> None:
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="submit", mode="drop", count=1)
    with pytest.raises(GatewayTimeout) as info:
        make_client(local_gateway).submit(PAYLOAD)
    assert info.value.outcome_unknown
    assert len(settled_log(local_gateway, mark, "submit", 1)) == 1


def test_submit_slower_than_the_read_timeout_is_gateway_timeout(local_gateway: Any) -> None:
    mark = log_mark(local_gateway)
    # the answer comes 3 s after the 0.5 s read timeout: wide apart, so a loaded machine cannot blur them
    local_gateway.control("faults", endpoint="submit", mode="delay", delay=3.5, count=1)
    client = make_client(local_gateway, timeout=(5, 0.5))
    started = time.monotonic()
    with pytest.raises(GatewayTimeout) as info:
        client.submit(PAYLOAD)
    assert time.monotonic() - started < 2.5  # gave up at the read timeout, did not wait for the answer
    assert info.value.outcome_unknown and info.value.operation == "submit"
    # the delayed request finishes on the server about 3 s later; then the log must hold just that one
    assert len(settled_log(local_gateway, mark, "submit", 1)) == 1


def test_submit_429_pauses_the_submit_bucket(local_gateway: Any) -> None:
    limiter = RateLimiter()
    client = make_client(local_gateway, limiter=limiter)
    mark = log_mark(local_gateway)
    local_gateway.control("faults", endpoint="submit", mode="status", status=429, retry_after=1, count=1)
    with pytest.raises(RateLimited) as info:
        client.submit(PAYLOAD)
    assert info.value.retry_after == 1.0
    assert 0.5 < limiter.paused_for("submit") <= 1.0 and limiter.paused_for("query") == 0.0
    client.submit(PAYLOAD)  # waits out the pause, then goes
    hits = log_since(local_gateway, mark, "submit")
    assert [e["status"] for e in hits] == [429, 200]
    assert hits[1]["t"] - hits[0]["t"] >= 1.0 - SLACK


def test_key_never_reaches_logs_or_errors(local_gateway: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(local_gateway)
    local_gateway.control("faults", endpoint="query", mode="status", status=500, count=1)
    with pytest.raises(ServerError) as info:
        client.get_task("video_whatever")
    with pytest.raises(NotFound) as nf:
        client.get_task("video_missing")
    texts = [caplog.text, repr(client), str(info.value), repr(info.value), info.value.body or "",
             str(nf.value)]
    assert all(local_gateway.key not in t for t in texts)


class _BrokenMidAnswer(requests.adapters.HTTPAdapter):
    """A transport failure requests does not classify (the body broke off after the request went out)."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ChunkedEncodingError("connection broken mid-answer")


def test_an_unclassified_transport_failure_on_submit_is_outcome_unknown(local_gateway: Any) -> None:
    client = GatewayClient(local_gateway.url, local_gateway.key)
    client.session.mount(local_gateway.url + "/", _BrokenMidAnswer())
    with pytest.raises(GatewayTimeout) as caught:
        client.submit(VideoRequest("A quiet harbour at dawn"))
    assert caught.value.outcome_unknown
    with pytest.raises(GatewayUnavailable) as polled:
        client.get_task("video_anything")
    assert not polled.value.outcome_unknown


def test_a_failure_text_echoing_the_key_is_redacted_before_anyone_stores_it(local_gateway: Any) -> None:
    client = make_client(local_gateway, key="tk-echoed-SECRET-77")
    local_gateway.control("fail_next", count=1, code="generation_failed",
                          message="upstream rejected token tk-echoed-SECRET-77")
    task = client.submit(VideoRequest("A kite over dunes"))
    deadline = time.monotonic() + 20
    while not task.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.get_task(task.id)
    assert task.status == "failed"
    assert "tk-echoed-SECRET-77" not in (task.error_message or "")
    assert "upstream rejected token" in (task.error_message or "")
