"""Share links, Compose URLs that carry every setting, and curl/python snippets that reproduce a run.

The snippets show the exact body `to_payload()` sends, but the key only as a placeholder
(`$TOAPIS_API_KEY` / `os.environ["TOAPIS_API_KEY"]`): a snippet is meant to be copied and pasted,
and the real key must never reach a page, a URL or a clipboard.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import pprint
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from lib.config import DEFAULT_BASE_URL, Settings
from lib.contract import MAX_PROMPT, VideoRequest
from lib.query import QueryReader, reader

log = logging.getLogger(__name__)

GENERATIONS_PATH = "/v1/videos/generations"
KEY_ENV = "TOAPIS_API_KEY"
# Query-string names on the Compose page (`/?prompt=…`); widgets bound to the URL must use the same keys.
QUERY_KEYS = ("prompt", "mode", "duration", "aspect_ratio", "negative_prompt", "watermark",
              "first_frame", "last_frame")
_IMAGE_KEYS = ("first_frame", "last_frame")
# A link may carry a prompt over the limit (Compose then cuts it with a note); past this it is not a prompt.
MAX_QUERY_PROMPT = 4 * MAX_PROMPT
MAX_QUERY_URL = 4096
# What a snippet sends instead of an image the gateway cannot fetch: an upload to the local gateway, or any
# address on this machine or a private network, means nothing to toapis.com.
IMAGE_PLACEHOLDER = "<YOUR_IMAGE_URL>"
_PRIVATE_SUFFIXES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa")


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


def request_from_query(q: Mapping[str, Any] | QueryReader) -> VideoRequest | None:
    """The request a Compose URL carries, or None when it carries none (no `prompt`).

    Read through lib.query (pass a QueryReader to collect its notes): values it cannot read are left
    out, but well-formed out-of-range ones (duration=7, mode=4k) are kept so that Compose can name them.
    """
    r = reader(q)
    if not r.has("prompt"):
        return None
    prompt = r.text("prompt", max_chars=MAX_QUERY_PROMPT, label="prompt", multiline=True) or ""
    images: list[str] = []
    for key in _IMAGE_KEYS:
        url = r.text(key, max_chars=MAX_QUERY_URL, label=key.replace("_", " ") + " URL")
        if url:
            images.append(url)
    n = len(_IMAGE_KEYS) + 1
    while r.has(f"image_{n}") and n < 50:  # bounded: a URL cannot carry more anyway
        url = r.text(f"image_{n}", max_chars=MAX_QUERY_URL, label=f"image {n} URL")
        if not url:
            break
        images.append(url)
        n += 1
    return VideoRequest(
        prompt=prompt,
        mode=r.text("mode", max_chars=32, label="mode") or None,
        duration=r.integer("duration", label="duration"),
        aspect_ratio=r.text("aspect_ratio", max_chars=32, label="aspect ratio") or None,
        image_urls=tuple(images),
        negative_prompt=r.text("negative_prompt", max_chars=MAX_QUERY_PROMPT, label="negative prompt",
                               multiline=True),
        watermark=r.flag("watermark", label="watermark setting"),
    )


def is_public_url(url: str) -> bool:
    """An http(s) URL that someone else's server could fetch: not this machine, not a private network.

    Judged from the text alone (no DNS lookup): a host name counts as public unless it is a local name;
    an IP literal is judged by lib.safe_fetch's address rules.
    """
    from lib.safe_fetch import blocked_address

    try:
        parts = urlsplit((url or "").strip())
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host.endswith(_PRIVATE_SUFFIXES) or ("." not in host and ":" not in host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return blocked_address(host) is None


def public_payload(request: VideoRequest) -> dict[str, Any]:
    """The body `to_payload()` sends, with every image the gateway could not fetch as IMAGE_PLACEHOLDER."""
    payload = request.to_payload()
    if isinstance(payload.get("image_urls"), list):
        payload["image_urls"] = [u if is_public_url(u) else IMAGE_PLACEHOLDER for u in payload["image_urls"]]
    if isinstance(payload.get("reference_images"), list):  # TOAPIS_CONTRACT=latest
        payload["reference_images"] = [u if is_public_url(u) else IMAGE_PLACEHOLDER
                                       for u in payload["reference_images"]]
    for item in payload.get("image_with_roles") or ():
        if not is_public_url(item["url"]):
            item["url"] = IMAGE_PLACEHOLDER
    return payload


def snippet_base(settings: Settings, *, public: bool = False) -> str:
    """The gateway a copied snippet calls. The owner's own gateway (TOAPIS_BASE_URL) when they use a real
    one; ToAPIs' public address for the local gateway (a 127.0.0.1 port means nothing elsewhere) and
    always for a share link's viewer, who runs it with their own key: the owner's gateway URL is not
    theirs to see."""
    if public or settings.uses_local_gateway or not settings.base_url:
        return DEFAULT_BASE_URL
    return settings.base_url


def curl_snippet(request: VideoRequest, base_url: str) -> str:
    """A shell command that submits exactly this request; the key stays `$TOAPIS_API_KEY`, and an image
    only this machine can reach becomes `<YOUR_IMAGE_URL>`."""
    body = json.dumps(public_payload(request), indent=2, ensure_ascii=False)
    url = _origin(base_url) + GENERATIONS_PATH
    return (
        "curl --request POST \\\n"
        f"  --url {shlex.quote(url)} \\\n"
        f'  --header "Authorization: Bearer ${KEY_ENV}" \\\n'
        "  --header 'Content-Type: application/json' \\\n"
        f"  --data {shlex.quote(body)}"
    )


def python_snippet(request: VideoRequest, base_url: str) -> str:
    """A runnable script: submit this request, then poll until it finishes (bounded, like the docs say).
    Images only this machine can reach become `<YOUR_IMAGE_URL>`, as in curl_snippet."""
    payload = pprint.pformat(public_payload(request), indent=4, width=100, sort_dicts=False)
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
