"""HTTP surface of the local gateway: ToAPIs' routes, the file host and the /__control/ plane.

`build_app(engine)` returns an ASGI app: a thin front (request log + injected faults) around a Starlette
router whose handlers call the Engine. Everything a client sees (paths, bodies, envelopes, statuses,
headers) follows docs/api-contract.md §2–§7.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lib.image_type import gateway_type

from . import clock, errors
from .engine import CREDITS_PER_USD, MAX_IMAGE_BYTES, PRICES, UPLOAD_NAME, Engine
from .errors import ApiError
from .faults import Fault
from .limits import LIMITS
from .render import ImageTooLarge, check_image_size
from .validation import parse_submit

log = logging.getLogger(__name__)

ABORT_KEY = "local_gateway.abort"  # scope["extensions"] entry set by runner.DroppableH11Protocol
NOTE_KEY = "local_gateway.note"
FAULTABLE = ("submit", "query", "upload", "balance", "file")
TASK_FILE = re.compile(r"^(video_[0-9A-Z]{26})\.(mp4|jpg)$")
BALANCE_PATHS = ("/v1/balance", "/v1/user/balance", "/user/balance")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def categorize(method: str, path: str) -> str:
    if path == "/v1/videos/generations":
        return "submit" if method == "POST" else "other"
    if path.startswith("/v1/videos/generations/"):
        return "query" if method == "GET" else "other"
    if path == "/v1/uploads/images":
        return "upload"
    if path in BALANCE_PATHS:
        return "balance"
    if path.startswith("/files/"):
        return "file"
    if path.startswith("/__control"):
        return "control"
    return "other"


def _task_id_in_path(path: str) -> str | None:
    if path.startswith("/v1/videos/generations/"):
        return path.rsplit("/", 1)[-1] or None
    m = (
        TASK_FILE.match(path.rsplit("/", 1)[-1])
        if path.startswith(("/files/videos/", "/files/posters/"))
        else None
    )
    return m.group(1) if m else None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _key_hash(request_headers: Any) -> str | None:
    """A short hash naming the caller's key for rate limiting; None without a usable Bearer token."""
    scheme, _, token = str(request_headers.get("authorization", "")).partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def build_app(engine: Engine) -> ASGIApp:
    def note(request: Request, task_id: str) -> None:
        request.scope.get(NOTE_KEY, {})["task_id"] = task_id

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def authorize(request: Request) -> str:
        key = _key_hash(request.headers)
        if key is None:
            raise errors.unauthorized()
        return key

    def limit(key: str, bucket: str) -> dict[str, str]:
        decision = engine.limiter.check(key, bucket)
        headers = decision.headers(bucket)
        if not decision.allowed:
            raise errors.rate_limited(max(1, math.ceil(decision.retry_after)), headers)
        return headers

    # -- ToAPIs routes --------------------------------------------------------------------------------------
    async def submit(request: Request) -> Response:
        headers = limit(authorize(request), "submit")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise errors.invalid_request("The request body is not valid JSON.", None) from None
        try:
            req = parse_submit(body, allow_pro_15=engine.allow_pro_15, version=engine.contract)
        except ApiError as err:
            err.headers.update(headers)
            raise
        task = engine.accept(req, body)
        if task is None:
            no_quota = errors.insufficient_quota()
            no_quota.headers.update(headers)
            raise no_quota
        note(request, task.id)
        reading = engine.read(task)
        return _json(
            {
                "id": task.id,
                "object": "generation.task",
                "model": task.model,
                "status": reading.status,
                "progress": reading.progress,
                "created_at": int(task.created_at),
                "metadata": {},
            },
            headers=headers,
        )

    async def query(request: Request) -> Response:
        headers = limit(authorize(request), "query")
        task = engine.store.get_task(request.path_params["task_id"])
        if task is None:
            err = errors.not_found()
            err.headers.update(headers)
            raise err
        return _json(engine.body(task, base_url(request)), headers=headers)

    async def upload(request: Request) -> Response:
        authorize(request)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise errors.upload_rejected("Send the image as multipart/form-data in the 'file' field")
        try:
            form = await request.form(max_files=4, max_fields=16)
        except HTTPException:
            raise errors.upload_rejected("Malformed multipart body") from None
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise errors.upload_rejected("No file uploaded: send the image in the 'file' field")
            data = await part.read(MAX_IMAGE_BYTES + 1)
            filename = part.filename
        finally:
            await form.close()
        if len(data) > MAX_IMAGE_BYTES:
            raise errors.upload_rejected("Image too large. Maximum size is 10MB")
        with contextlib.suppress(OSError, SyntaxError):  # not an image: refused just below, in words
            try:  # header only: a decompression bomb is refused before a pixel is decoded
                check_image_size(data, "uploaded")
            except ImageTooLarge as exc:
                raise errors.upload_rejected(f"Image too large: {exc}") from None
        kind = gateway_type(data)  # Pillow reads the header (lib/image_type.py)
        if kind is None:
            raise errors.upload_rejected("Unsupported image type. Allowed: JPEG, PNG, WebP, GIF")
        info = engine.save_upload(data, filename, *kind)
        return _json(
            {
                "success": True,
                "message": "",
                "data": {
                    "id": info["id"],
                    "url": f"{base_url(request)}/files/uploads/{info['name']}",
                    "mime_type": info["mime_type"],
                    "size": info["size"],
                },
            }
        )

    async def balance(request: Request) -> Response:
        authorize(request)
        return _json(engine.balance_body())

    # -- file host ------------------------------------------------------------------------------------------
    async def task_file(request: Request) -> Response:
        kind = request.url.path.split("/")[2]  # videos | posters
        m = TASK_FILE.match(request.path_params["name"])
        if m is None or (kind == "videos") != (m.group(2) == "mp4"):
            raise errors.not_found("File not found")
        task_id = m.group(1)
        note(request, task_id)
        task = engine.store.get_task(task_id)
        if task is None:
            raise errors.not_found("File not found")
        reading = engine.read(task)
        timeline = engine.timeline(task)
        if reading.status == "in_progress" and time.time() - task.created_at >= timeline.total:
            # Completed by the clock but the file is missing (restart, wipe): render it now, then serve.
            await run_in_threadpool(engine.wait_rendered, task_id)
            reading = engine.read(task)
        if reading.status != "completed":
            raise errors.not_found("File not found")
        if task.expired or time.time() >= (reading.finished_at or 0) + 86400:
            raise errors.forbidden()
        path = engine.video_path(task_id) if kind == "videos" else engine.poster_path(task_id)
        if not path.exists():
            raise errors.not_found("File not found")
        media = "video/mp4" if kind == "videos" else "image/jpeg"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    async def upload_file(request: Request) -> Response:
        name = request.path_params["name"]
        info = engine.store.get_upload(name) if UPLOAD_NAME.match(name) else None
        if info is None or not (engine.uploads / name).exists():
            raise errors.not_found("File not found")
        return FileResponse(engine.uploads / name, media_type=info["mime_type"])

    # -- control plane --------------------------------------------------------------------------------------
    def local_only(request: Request) -> None:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK and not host.startswith("127."):
            raise ApiError(403, {"error": "the control surface answers loopback clients only"})

    async def control_body(request: Request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ApiError(400, {"error": "body must be JSON"}) from None
        if not isinstance(body, dict):
            raise ApiError(400, {"error": "body must be a JSON object"})
        return body

    def info_body(request: Request) -> dict:
        return {
            "kind": "local-gateway",
            "version": 1,
            "url": base_url(request),
            "speed": engine.speed,
            "progress": engine.progress,
            "seed": engine.seed,
            "allow_pro_15": engine.allow_pro_15,
            "contract": engine.contract,
            "prices_usd_per_second": PRICES,
            "credits_per_usd": CREDITS_PER_USD,
            "rate_limits_per_second": LIMITS,
            "balance": engine.balance_body(),
            "tasks": engine.store.count_tasks(),
            "render_queue": len(engine.renders),
            "render_workers": engine.renders.workers,
            **engine.faults.pending(),
        }

    async def c_info(request: Request) -> Response:
        local_only(request)
        return _json(info_body(request))

    async def c_config(request: Request) -> Response:
        local_only(request)
        body = await control_body(request)
        try:
            speed = float(body["speed"]) if "speed" in body else None
            bal = float(body["balance"]) if "balance" in body else None
        except (TypeError, ValueError):
            raise ApiError(400, {"error": "speed and balance must be numbers"}) from None
        if speed is not None and not 0 < speed <= 10_000:
            raise ApiError(400, {"error": "speed must be > 0 (1.0 = real-ish timing)"})
        if bal is not None and bal < 0:
            raise ApiError(400, {"error": "balance must be >= 0 (USD)"})
        progress, seed = body.get("progress", engine.progress), body.get("seed")
        if progress not in clock.PROGRESS_MODELS:
            raise ApiError(400, {"error": f"progress must be one of {', '.join(clock.PROGRESS_MODELS)}"})
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ApiError(400, {"error": "seed must be an integer or null"})
        if speed is not None:
            engine.speed = speed
        if bal is not None:
            engine.store.set_balance(bal)
        if "allow_pro_15" in body:
            engine.allow_pro_15 = bool(body["allow_pro_15"])
        if "progress" in body or "seed" in body:
            engine.set_progress(progress, seed)
        if body.get("contract") in ("v1", "latest"):
            engine.contract = body["contract"]
        return _json(info_body(request))

    async def c_faults(request: Request) -> Response:
        local_only(request)
        if request.method == "POST":
            try:
                engine.faults.add(Fault.from_body(await control_body(request)))
            except ValueError as exc:
                raise ApiError(400, {"error": str(exc)}) from None
        return _json(engine.faults.pending())

    async def c_fail_next(request: Request) -> Response:
        local_only(request)
        body = await control_body(request)
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError):
            raise ApiError(400, {"error": "count must be an integer"}) from None
        if not 1 <= count <= 1000:
            raise ApiError(400, {"error": "count must be within 1..1000"})
        engine.faults.fail_next(
            count,
            str(body.get("code", "generation_failed")),
            str(body.get("message", "Generation failed: Content violates the content policy")),
        )
        return _json(engine.faults.pending())

    async def c_expire(request: Request) -> Response:
        local_only(request)
        body = await control_body(request)
        task_id = body.get("task_id")
        if task_id is not None and engine.store.get_task(str(task_id)) is None:
            raise ApiError(404, {"error": f"no task {task_id}"})
        return _json({"expired": engine.store.expire(None if task_id is None else str(task_id))})

    async def c_requests(request: Request) -> Response:
        local_only(request)
        since = request.query_params.get("since")
        try:
            since_f = float(since) if since else None
        except ValueError:
            raise ApiError(400, {"error": "since must be Unix seconds"}) from None
        return _json(
            {"requests": engine.store.requests(request.query_params.get("category") or None, since_f)}
        )

    async def c_reset(request: Request) -> Response:
        local_only(request)
        engine.faults.clear()
        engine.store.clear_requests()
        engine.limiter.reset()
        return _json({"ok": True})

    # -- errors ---------------------------------------------------------------------------------------------
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _json(exc.body, exc.status, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json(
            {
                "error": {
                    "code": exc.status_code,
                    "message": exc.detail,
                    "type": "not_found_error" if exc.status_code == 404 else "invalid_request_error",
                }
            },
            exc.status_code,
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        return _json(errors.server_error().body, 500)

    routes = [
        Route("/v1/videos/generations", submit, methods=["POST"]),
        Route("/v1/videos/generations/{task_id}", query, methods=["GET"]),
        Route("/v1/uploads/images", upload, methods=["POST"]),
        *(Route(p, balance, methods=["GET"]) for p in BALANCE_PATHS),
        Route("/files/videos/{name}", task_file, methods=["GET", "HEAD"]),
        Route("/files/posters/{name}", task_file, methods=["GET", "HEAD"]),
        Route("/files/uploads/{name}", upload_file, methods=["GET", "HEAD"]),
        Route("/__control/info", c_info, methods=["GET"]),
        Route("/__control/config", c_config, methods=["POST"]),
        Route("/__control/faults", c_faults, methods=["GET", "POST"]),
        Route("/__control/fail_next", c_fail_next, methods=["POST"]),
        Route("/__control/expire", c_expire, methods=["POST"]),
        Route("/__control/requests", c_requests, methods=["GET"]),
        Route("/__control/reset", c_reset, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
    )
    return Front(app, engine)


class Front:
    """Logs every request and applies the injected faults before (or around) the real handler."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.time()  # rate limits count arrivals, so the log does too
        method, path = scope["method"], scope["path"]
        category = categorize(method, path)
        note: dict[str, Any] = {"status": 0, "task_id": _task_id_in_path(path)}
        scope[NOTE_KEY] = note

        async def send_noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                note["status"] = message["status"]
            await send(message)

        fault = self.engine.faults.take(category) if category in FAULTABLE else None
        try:
            if fault is None:
                await self.app(scope, receive, send_noting)
            else:
                await self._fault(fault, category, scope, receive, send_noting)
        except Exception:  # Starlette already answered 500 with the internal_error envelope
            log.exception("error while serving %s %s", method, path)
        finally:
            self.engine.store.log_request(
                arrived, method, path, category, note["status"], note["task_id"]
            )

    async def _fault(self, fault: Fault, category: str, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("injecting fault %s on %s", fault.mode, category)
        if fault.mode == "status":
            key = _key_hash(dict((k.decode().lower(), v.decode()) for k, v in scope.get("headers", [])))
            rate: dict[str, str] = {}
            if category in ("submit", "query") and key is not None:
                rate = self.engine.limiter.peek(key, category).headers(category)
                rate["X-RateLimit-Remaining"] = "0"
            err = errors.for_status(
                fault.status, category=category, retry_after=fault.retry_after, rate_headers=rate
            )
            await _json(err.body, err.status, err.headers)(scope, receive, send)
        elif fault.mode == "drop":
            abort = scope.get("extensions", {}).get(ABORT_KEY)
            if abort is None:
                raise RuntimeError("drop faults need the gateway's own uvicorn protocol")
            abort()
            await asyncio.sleep(0.05)  # let the server see the connection go before the app returns
        elif fault.mode == "malformed":
            body = b'{"id": "video_01J9HA7JPQ9A0Z6JZ3V8M9W6PZ", "object": "generation.ta'
            await Response(body, 200, media_type="application/json")(scope, receive, send)
        else:  # delay | unknown_status: run the real handler first (a delayed submit IS accepted)
            messages: list[Message] = []

            async def capture(message: Message) -> None:
                messages.append(message)

            await self.app(scope, receive, capture)
            if fault.mode == "delay":
                await asyncio.sleep(fault.delay)
            else:
                messages = _restatus(messages, fault.value)
            for message in messages:
                await send(message)


def _restatus(messages: list[Message], value: str) -> list[Message]:
    """Rewrite the JSON body's "status" to an undocumented word (clients must reject it, not guess)."""
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        data = json.loads(body)
    except ValueError:
        return messages
    if start is None or not isinstance(data, dict) or "status" not in data:
        return messages
    data["status"] = value
    new_body = json.dumps(data).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(new_body)).encode()))
    return [
        {**start, "headers": headers},
        {"type": "http.response.body", "body": new_body, "more_body": False},
    ]
