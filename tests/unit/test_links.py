"""Share links, Compose URLs and snippets: round-trips, and snippets that really run (curl, python)."""
from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from lib.contract import VideoRequest
from lib.links import (
    QUERY_KEYS,
    curl_snippet,
    python_snippet,
    request_from_query,
    rerun_query,
    share_url,
)

A = "https://example.com/day-city.jpg"
B = "https://example.com/night%20city.jpg?sig=a&b=c"
TRICKY = "It's \"$HOME\" $(echo pwned) `id` & 50% off; a=b #tag\n2nd line — ünïcødé ✓ \\ back"

REQUESTS = [
    VideoRequest("A golden cat running on a sunlit meadow", mode="std", duration=5, aspect_ratio="16:9"),
    VideoRequest("Tokyo at night", mode="pro", duration=10, aspect_ratio="16:9",
                 negative_prompt="blurry, low quality, distorted"),
    VideoRequest("Time-lapse of a flower", duration=15),
    VideoRequest("The person turns and smiles", mode="std", duration=5, image_urls=(A,)),
    VideoRequest("Day to night", mode="pro", duration=5, aspect_ratio="9:16", image_urls=(A, B)),
    VideoRequest("just a prompt"),
    VideoRequest("marked", watermark=True, negative_prompt=""),
    VideoRequest("unmarked", watermark=False, aspect_ratio="1:1"),
    VideoRequest(TRICKY, negative_prompt=TRICKY),
    VideoRequest("three images (invalid, but carried)", image_urls=(A, B, A)),
]


# ---------------------------------------------------------------- share links

@pytest.mark.parametrize(("base", "kw", "url"), [
    ("http://localhost:8501", {"run_id": "abc_DEF-123"}, "http://localhost:8501/run?id=abc_DEF-123"),
    ("http://localhost:8501/", {"group_id": "g1"}, "http://localhost:8501/run?group=g1"),
    ("https://play.example.com", {"run_id": "a b&c=d"}, "https://play.example.com/run?id=a%20b%26c%3Dd"),
])
def test_share_url(base: str, kw: dict[str, str], url: str) -> None:
    assert share_url(base, **kw) == url


@pytest.mark.parametrize("kw", [{}, {"run_id": "r", "group_id": "g"}])
def test_share_url_needs_exactly_one_id(kw: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one of run_id or group_id"):
        share_url("http://x", **kw)


# ---------------------------------------------------------------- Compose URLs

def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@pytest.mark.parametrize("req", REQUESTS, ids=range(len(REQUESTS)))
def test_compose_query_round_trip(req: VideoRequest) -> None:
    url = "http://127.0.0.1:8501/?" + urlencode(rerun_query(req), quote_via=quote)
    assert " " not in url and "\n" not in url
    q = _query_of(url)
    assert q == rerun_query(req)
    assert all(isinstance(v, str) for v in q.values())
    assert request_from_query(q) == req


def test_rerun_query_names_and_unset_fields() -> None:
    q = rerun_query(REQUESTS[4].replace(watermark=False, negative_prompt="n"))
    assert q == {"prompt": "Day to night", "mode": "pro", "duration": "5", "aspect_ratio": "9:16",
                 "negative_prompt": "n", "watermark": "false", "first_frame": A, "last_frame": B}
    assert set(q) <= set(QUERY_KEYS)
    assert rerun_query(VideoRequest("p")) == {"prompt": "p"}


def test_request_from_query_without_prompt_is_none() -> None:
    assert request_from_query({}) is None
    assert request_from_query({"task": "video_1", "mode": "pro"}) is None


def test_request_from_query_is_tolerant() -> None:
    got = request_from_query({"prompt": "p", "duration": "ten", "watermark": "maybe", "mode": "",
                              "last_frame": B})
    assert got == VideoRequest("p", image_urls=(B,))
    assert request_from_query({"prompt": "p", "watermark": "1", "duration": "15"}) == VideoRequest(
        "p", watermark=True, duration=15)
    # Out-of-range values survive so that Compose shows the validation message instead of hiding it.
    assert request_from_query({"prompt": "p", "duration": "7", "mode": "4k"}) == VideoRequest(
        "p", duration=7, mode="4k")


# ---------------------------------------------------------------- snippets: text checks

def _curl_args(snippet: str) -> list[str]:
    return shlex.split(snippet.replace("\\\n", " "))


@pytest.mark.parametrize("req", REQUESTS, ids=range(len(REQUESTS)))
def test_curl_body_parses_back_to_the_payload(req: VideoRequest) -> None:
    snippet = curl_snippet(req, "https://toapis.com/")
    args = _curl_args(snippet)
    assert args[:3] == ["curl", "--request", "POST"]
    assert args[args.index("--url") + 1] == "https://toapis.com/v1/videos/generations"
    body = args[args.index("--data") + 1]
    assert json.loads(body) == req.to_payload()
    assert json.dumps(json.loads(body)) == json.dumps(req.to_payload())  # key order too
    assert "Authorization: Bearer $TOAPIS_API_KEY" in args


@pytest.mark.parametrize("req", REQUESTS, ids=range(len(REQUESTS)))
def test_python_snippet_compiles_and_carries_the_payload(req: VideoRequest) -> None:
    snippet = python_snippet(req, "http://127.0.0.1:9/")
    tree = ast.parse(compile(snippet, "<snippet>", "exec", ast.PyCF_ONLY_AST))
    assigned = {t.targets[0].id: t.value for t in tree.body
                if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)}
    assert ast.literal_eval(assigned["payload"]) == req.to_payload()
    assert ast.literal_eval(assigned["BASE_URL"]) == "http://127.0.0.1:9"
    assert 'os.environ["TOAPIS_API_KEY"]' in snippet


def test_snippets_never_hold_a_key() -> None:
    for snippet in (curl_snippet(REQUESTS[0], "https://toapis.com"), python_snippet(REQUESTS[0], "https://toapis.com")):
        assert "sk-" not in snippet
        assert "local-playground" not in snippet


# ---------------------------------------------------------------- snippets: run them for real

class _Recorder(BaseHTTPRequestHandler):
    """A tiny gateway: records what arrives, answers queued, then in_progress, then completed."""

    calls: list[dict]

    def _reply(self, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.calls.append({"method": "POST", "path": self.path,  # type: ignore[attr-defined]
                                  "auth": self.headers.get("Authorization"),
                                  "type": self.headers.get("Content-Type"), "body": body})
        self._reply({"id": "video_test1", "object": "generation.task", "status": "queued", "progress": 0})

    def do_GET(self) -> None:
        calls = self.server.calls  # type: ignore[attr-defined]
        calls.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        if sum(c["method"] == "GET" for c in calls) < 2:
            self._reply({"id": "video_test1", "status": "in_progress", "progress": 40})
        else:
            video = {"url": "http://files.test/v.mp4", "format": "mp4"}
            self._reply({"id": "video_test1", "status": "completed", "progress": 100,
                         "result": {"type": "video", "data": [video]}})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["TOAPIS_API_KEY"] = "sk-test-snippet"
    return env


@pytest.mark.parametrize("req", [REQUESTS[1], REQUESTS[4], REQUESTS[8]], ids=["neg", "frames", "tricky"])
def test_curl_snippet_runs_in_bash(recorder: ThreadingHTTPServer, req: VideoRequest) -> None:
    base = f"http://127.0.0.1:{recorder.server_address[1]}"
    done = subprocess.run(["bash", "-c", curl_snippet(req, base) + " --silent --show-error"],
                          env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "video_test1"
    (call,) = recorder.calls  # type: ignore[attr-defined]
    assert call["path"] == "/v1/videos/generations"
    assert call["auth"] == "Bearer sk-test-snippet"  # the shell expanded the placeholder
    assert call["type"] == "application/json"
    assert json.loads(call["body"]) == req.to_payload()


def test_python_snippet_submits_and_polls(recorder: ThreadingHTTPServer) -> None:
    req = REQUESTS[8]
    base = f"http://127.0.0.1:{recorder.server_address[1]}"
    snippet = python_snippet(req, base)
    assert "POLL_SECONDS = 10 " in snippet
    fast = snippet.replace("POLL_SECONDS = 10 ", "POLL_SECONDS = 0.01 ", 1)  # same script, shorter sleep
    done = subprocess.run([sys.executable, "-c", fast], env=_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "video: http://files.test/v.mp4" in done.stdout
    calls = recorder.calls  # type: ignore[attr-defined]
    assert [c["method"] for c in calls] == ["POST", "GET", "GET"]
    assert json.loads(calls[0]["body"]) == req.to_payload()
    assert all(c["auth"] == "Bearer sk-test-snippet" for c in calls)
    assert calls[1]["path"] == "/v1/videos/generations/video_test1"


@pytest.mark.parametrize(("url", "public"), [
    ("https://cdn.example.com/frame.png", True),
    ("http://img.test/a.jpg", True),
    ("http://127.0.0.1:41234/files/abc.png", False),   # an upload to the local gateway
    ("http://localhost:8000/a.png", False),
    ("http://10.1.2.3/a.png", False),
    ("http://192.168.0.9/a.png", False),
    ("http://169.254.169.254/latest", False),
    ("http://[::1]/a.png", False),
    ("http://nas.local/a.png", False),
    ("http://intranet/a.png", False),
    ("ftp://example.com/a.png", False),
    ("not a url", False),
])
def test_is_public_url(url: str, public: bool) -> None:
    from lib.links import is_public_url

    assert is_public_url(url) is public


def test_snippets_name_a_placeholder_for_images_only_this_machine_can_reach() -> None:
    from lib.links import IMAGE_PLACEHOLDER, curl_snippet, python_snippet

    req = VideoRequest(prompt="p", image_urls=("http://127.0.0.1:5000/files/a.png", "https://x.example/b.png"))
    for snippet in (curl_snippet(req, "https://toapis.com"), python_snippet(req, "https://toapis.com")):
        assert "127.0.0.1" not in snippet and IMAGE_PLACEHOLDER in snippet
        assert "https://x.example/b.png" in snippet  # a public image is kept as it is
    assert req.image_urls[0].startswith("http://127.0.0.1")  # the run itself is untouched


def test_snippet_base_is_the_owners_gateway_only_for_the_owner_of_a_real_one() -> None:
    """One builder for every snippet: a card shows the owner's TOAPIS_BASE_URL; a share link's viewer and
    anyone on the local gateway get ToAPIs' public address (a 127.0.0.1 port means nothing elsewhere)."""
    from lib.config import DEFAULT_BASE_URL, load_settings
    from lib.links import snippet_base

    own = load_settings({"TOAPIS_API_KEY": "sk-test-1234", "TOAPIS_BASE_URL": "https://gw.example.com/"})
    local = load_settings({"TOAPIS_BASE_URL": "http://127.0.0.1:8765/"})
    assert snippet_base(own) == own.base_url and own.base_url.startswith("https://gw.example.com")
    assert snippet_base(own, public=True) == DEFAULT_BASE_URL
    assert snippet_base(local) == snippet_base(local, public=True) == DEFAULT_BASE_URL
    assert snippet_base(load_settings({})) == DEFAULT_BASE_URL
