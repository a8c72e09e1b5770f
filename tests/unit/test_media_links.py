"""Where gateway links enter the app: Task parsing, the upload answer, the file-host setting, the wiring.

The attack tests (test_hostile_gateway.py, test_safe_fetch.py) show what an attacker gets; these pin the
rules at each entrance so a refactor cannot quietly widen one.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lib.config import load_settings
from lib.gateway import GatewayClient, ProtocolError, Task
from lib.services import start_services

DONE = {"id": "task_1", "status": "completed", "progress": 100}


def completed(url: object, thumb: object = None) -> Task:
    item = {"url": url}
    if thumb is not None:
        item["thumbnail_url"] = thumb
    return Task.from_payload({**DONE, "result": {"data": [item]}})


@pytest.mark.parametrize(("url", "words"), [
    ("/proc/self/environ", "is a file path"),
    ("file:///proc/self/environ", "is a file: address"),
    ("data:video/mp4;base64,AAAA", "is a data: address"),
    ("javascript:alert(1)", "is a javascript: address"),
    ("videos/x.mp4", "is not an absolute http(s) web address"),
    ("https://cdn.example.com/a.mp4\n/etc/passwd", "contains spaces, control characters"),
    ("http://cdn.example.com@127.0.0.1/x.mp4", "carries a user name or password"),
    ("http:///x.mp4", "has no host name"),
])
def test_a_completed_task_with_a_bad_video_link_has_no_video_and_says_why(url: str, words: str) -> None:
    task = completed(url, thumb=url)
    assert task.status == "completed" and task.video_url is None and task.thumbnail_url is None
    assert task.video_url_problem is not None and words in task.video_url_problem
    reason = task.no_video_reason
    assert reason is not None and words in reason and "never opened it" in reason
    assert url.strip() not in reason  # the value itself is not repeated back


def test_good_links_pass_and_a_bad_thumbnail_alone_is_dropped() -> None:
    task = completed("https://cdn.example.com/v.mp4?sig=a%2Fb", thumb="/etc/passwd")
    assert task.video_url == "https://cdn.example.com/v.mp4?sig=a%2Fb" and task.thumbnail_url is None
    assert task.video_url_problem is None and task.no_video_reason is None
    assert Task.from_payload({**DONE, "url": "  https://cdn.example.com/v.mp4 "}).video_url \
        == "https://cdn.example.com/v.mp4"  # surrounding blanks are trimmed, then the link is checked


def test_a_completed_task_with_no_link_keeps_the_plain_sentence() -> None:
    task = Task.from_payload(DONE)
    assert task.video_url is None and task.video_url_problem is None
    assert task.no_video_reason == ("The gateway said the run completed but gave no video link, so there is "
                                    "nothing to archive.")


class _Uploads(BaseHTTPRequestHandler):
    """A gateway whose upload answer names a path on the server instead of a link."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"success": True, "data": {"url": "/proc/self/environ"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_upload_answer_whose_link_is_not_http_is_a_protocol_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Uploads)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = GatewayClient(f"http://127.0.0.1:{server.server_address[1]}", "k")
        with pytest.raises(ProtocolError) as info:
            client.upload_image(b"\x89PNG\r\n\x1a\n", "a.png")
    finally:
        server.shutdown()
        server.server_close()
    assert "is a file path" in str(info.value)


def test_file_hosts_setting() -> None:
    assert load_settings({}).file_hosts == ()
    got = load_settings({"PLAYGROUND_FILE_HOSTS": " Files.Example.com, *.cdn.example.com ,files.example.com"})
    assert got.file_hosts == ("files.example.com", "*.cdn.example.com")
    for bad in ("https://files.example.com", "files.example.com:443", "files.example.com/videos",
                "user@files.example.com", "*", "*.", "a..b", "x.*.example.com", "two words"):
        with pytest.raises(ValueError) as info:
            load_settings({"PLAYGROUND_FILE_HOSTS": bad})
        assert "PLAYGROUND_FILE_HOSTS must be a comma-separated list of host names" in str(info.value)


def test_the_app_trusts_exactly_its_gateway_origin(local_gateway, tmp_path) -> None:
    settings = load_settings(env={"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": local_gateway.url,
                                  "PLAYGROUND_FILE_HOSTS": "files.example.com"})
    services = start_services(settings, start_worker=False)
    try:
        policy = services.archive.fetcher.policy
        assert policy.trusted == (local_gateway.url,) and policy.file_hosts == ("files.example.com",)
        assert not policy.allow_private
    finally:
        services.stop()
