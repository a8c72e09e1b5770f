"""Share links, Compose URLs that carry every setting, and curl/python snippets that reproduce a run.

The snippets show the exact body `to_payload()` sends, but the key only as a placeholder
(`$TOAPIS_API_KEY` / `os.environ["TOAPIS_API_KEY"]`): a snippet is meant to be copied and pasted,
and the real key must never reach a page, a URL or a clipboard.
"""
from __future__ import annotations

import json
import logging
import pprint
import shlex
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from lib.contract import VideoRequest

log = logging.getLogger(__name__)

GENERATIONS_PATH = "/v1/videos/generations"
KEY_ENV = "TOAPIS_API_KEY"
# Query-string names on the Compose page (`/?prompt=…`); widgets bound to the URL must use the same keys.
QUERY_KEYS = ("prompt", "mode", "duration", "aspect_ratio", "negative_prompt", "watermark",
              "first_frame", "last_frame")
_IMAGE_KEYS = ("first_frame", "last_frame")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _origin(base: str) -> str:
    return base.rstrip("/")


def share_url(base: str, run_id: str | None = None, group_id: str | None = None) -> str:
    """Read-only page of one run (`/run?id=…`) or of a comparison group (`/run?group=…`)."""
    if (run_id is None) == (group_id is None):
        raise ValueError("A share link needs exactly one of run_id or group_id.")
    key, value = ("id", run_id) if run_id is not None else ("group", group_id)
    return f"{_origin(base)}/run?{urlencode({key: value}, quote_via=quote)}"


def rerun_query(request: VideoRequest) -> dict[str, str]:
    """Query parameters that rebuild `request` on the Compose page; unset fields stay out."""
    q: dict[str, str] = {"prompt": request.prompt}
    if request.mode is not None:
        q["mode"] = str(request.mode)
    if request.duration is not None:
        q["duration"] = str(request.duration)
    if request.aspect_ratio is not None:
        q["aspect_ratio"] = str(request.aspect_ratio)
    if request.negative_prompt is not None:
        q["negative_prompt"] = request.negative_prompt
    if request.watermark is not None:
        q["watermark"] = "true" if request.watermark else "false"
    for i, url in enumerate(request.image_urls):
        # A third image is invalid, but a link must not hide that: carry it so validation shows it.
        q[_IMAGE_KEYS[i] if i < len(_IMAGE_KEYS) else f"image_{i + 1}"] = url
    return q


def compose_url(base: str, request: VideoRequest) -> str:
    """`<base>/?prompt=…&mode=…`: the Compose page pre-filled with `request`."""
    return f"{_origin(base)}/?{urlencode(rerun_query(request), quote_via=quote)}"


def request_from_query(q: Mapping[str, str]) -> VideoRequest | None:
    """The request a Compose URL carries, or None when it carries none (no `prompt`)."""
    prompt = q.get("prompt")
    if prompt is None:
        return None
    duration: int | None = None
    raw_duration = q.get("duration")
    if raw_duration is not None:
        try:
            duration = int(raw_duration)
        except ValueError:
            log.info("ignoring non-numeric duration in a Compose URL: %r", raw_duration)
    watermark: bool | None = None
    raw_watermark = (q.get("watermark") or "").strip().lower()
    if raw_watermark in _TRUE:
        watermark = True
    elif raw_watermark in _FALSE:
        watermark = False
    images: list[str] = []
    for key in _IMAGE_KEYS:
        if q.get(key):
            images.append(q[key])
    n = len(_IMAGE_KEYS) + 1
    while q.get(f"image_{n}") and n < 50:  # bounded: a URL cannot carry more anyway
        images.append(q[f"image_{n}"])
        n += 1
    return VideoRequest(
        prompt=prompt,
        mode=q.get("mode") or None,
        duration=duration,
        aspect_ratio=q.get("aspect_ratio") or None,
        image_urls=tuple(images),
        negative_prompt=q.get("negative_prompt"),
        watermark=watermark,
    )


def curl_snippet(request: VideoRequest, base_url: str) -> str:
    """A shell command that submits exactly this request; the key stays `$TOAPIS_API_KEY`."""
    body = json.dumps(request.to_payload(), indent=2, ensure_ascii=False)
    url = _origin(base_url) + GENERATIONS_PATH
    return (
        "curl --request POST \\\n"
        f"  --url {shlex.quote(url)} \\\n"
        f'  --header "Authorization: Bearer ${KEY_ENV}" \\\n'
        "  --header 'Content-Type: application/json' \\\n"
        f"  --data {shlex.quote(body)}"
    )


def python_snippet(request: VideoRequest, base_url: str) -> str:
    """A runnable script: submit this request, then poll until it finishes (bounded, like the docs say)."""
    payload = pprint.pformat(request.to_payload(), indent=4, width=100, sort_dicts=False)
    return f'''import os
import time

import requests

BASE_URL = {_origin(base_url)!r}
POLL_SECONDS = 10      # ToAPIs: first look after 5 s, then every 10 s
MAX_WAIT_SECONDS = 600
headers = {{"Authorization": "Bearer " + os.environ["{KEY_ENV}"]}}
payload = {payload}

resp = requests.post(BASE_URL + "{GENERATIONS_PATH}", json=payload, headers=headers, timeout=30)
resp.raise_for_status()
task = resp.json()
print("task", task["id"], task["status"])

deadline = time.monotonic() + MAX_WAIT_SECONDS
while task["status"] not in ("completed", "failed") and time.monotonic() < deadline:
    time.sleep(POLL_SECONDS)
    resp = requests.get(BASE_URL + "{GENERATIONS_PATH}/" + task["id"], headers=headers, timeout=30)
    resp.raise_for_status()
    task = resp.json()
    print(task["status"], task.get("progress"))

if task["status"] == "completed":
    data = (task.get("result") or {{}}).get("data") or [{{}}]
    print("video:", data[0].get("url") or task.get("url"))
else:
    print("not completed:", task.get("error") or task["status"])
'''
