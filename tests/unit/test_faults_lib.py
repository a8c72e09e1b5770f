"""Faults at the seams between worker, gateway and archive: nothing lost, nothing charged twice.

Every test drives a real Worker against the real local gateway (over HTTP) and a real SQLite ledger,
injecting faults through the gateway's control surface, and checks the truth in two places: the ledger
(what the user will see) and the gateway's request log (what went over the wire, i.e. what was billed).
The client-level retry rules are in test_gateway_http.py; this file is about what the *worker* does
with each failure, and about the archive's safety rules (only http(s), size cap, content type, no path
escapes), which guard the one place where we write files named after things from outside.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from lib import ledger as L
from lib import playground
from lib.archive import EXPIRED_MESSAGE, Archive, ArchiveError
from lib.contract import VideoRequest
from lib.gateway import GatewayClient
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.worker import Worker

REQ = VideoRequest(prompt="a paper boat on a rain puddle", mode="std", duration=5, aspect_ratio="1:1")
SLACK = 0.05


# ---------------------------------------------------------------------------------- helpers


class Clock:
    """Real time plus an offset the test can move forward (to skip the worker's back-off waits)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def client_for(url: str, key: str = "test-key", *, read_timeout: float = 10.0,
               limiter: RateLimiter | None = None) -> GatewayClient:
    """Like the app's worker client (one attempt per call), so every fault reaches the worker."""
    return GatewayClient(url, key, timeout=(2.0, read_timeout), limiter=limiter or RateLimiter())


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def trusting(root: Path, url: str, **kw: Any) -> Archive:
    """An archive as the app builds one: the gateway at `url` (on 127.0.0.1) is its trusted origin."""
    return Archive(root, fetcher=SafeFetcher(FetchPolicy.for_gateway(url)), **kw)


@pytest.fixture
def archive(tmp_path: Path, request: pytest.FixtureRequest) -> Archive:
    """Trusts the gateway the test talks to (local_gateway, or odd_server playing one), as the app would."""
    root = tmp_path / "archive"
    root.mkdir()
    if "local_gateway" in request.fixturenames:
        return trusting(root, request.getfixturevalue("local_gateway").url)
    if "odd_server" in request.fixturenames:
        return trusting(root, request.getfixturevalue("odd_server"))
    return Archive(root)


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def workers() -> Iterator[WorkerFactory]:
    """Make Workers (driven with tick()) and stop their thread pools afterwards."""
    made: list[Worker] = []

    def make(led: Ledger, client: GatewayClient, archive: Archive, *, clock: Callable[[], float] = time.time,
             owner: str = "w1", threads: int = 2) -> Worker:
        worker = Worker(led, client, archive, owner=owner, clock=clock, threads=threads, first_look=0.2)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop(timeout=5)


def new_run(led: Ledger, prompt: str = REQ.prompt) -> str:
    run_id = Ledger.new_id()
    led.create_run(run_id, REQ.replace(prompt=prompt), 0.18)
    return run_id


def drive(worker: Worker, done: Callable[[], bool], limit: float = 60.0, nap: float = 0.05) -> None:
    """Tick the worker until `done()` (bounded)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        worker.tick()
        if done():
            return
        time.sleep(nap)
    raise AssertionError(f"condition not reached within {limit} s")


def run_of(led: Ledger, run_id: str) -> L.Run:
    run = led.get(run_id)
    assert run is not None
    return run


def submits(gw: Any) -> list[dict]:
    return [e for e in gw.requests("submit") if e.get("method") == "POST"]


def video_gets(gw: Any, task_id: str | None) -> list[dict]:
    """The gateway's log of downloads of one task's MP4 (the archiver's fetches)."""
    tail = f"/videos/{task_id}.mp4"
    return [e for e in gw.requests("file") if task_id and e.get("path", "").endswith(tail)]


def archived(led: Ledger, run_id: str) -> bool:
    return run_of(led, run_id).video_path is not None


# ---------------------------------------------------------------------------------- the submit POST


def test_submit_timeout_becomes_unknown_is_never_resubmitted_and_recovers_by_task_id(
    local_gateway: Any, led: Ledger, archive: Archive, workers: WorkerFactory
) -> None:
    """The gateway got the POST but the answer came too late: maybe billed, so never sent again."""
    local_gateway.control("faults", endpoint="submit", mode="delay", delay=1.5, count=1)
    worker = workers(led, client_for(local_gateway.url, read_timeout=0.5), archive)
    run_id = new_run(led)
    worker.tick()
    run = run_of(led, run_id)
    assert run.state == L.UNKNOWN
    words = playground.explain(run)
    assert "task id" in words and len(words) > 40

    time.sleep(1.5)  # the delayed POST finishes on the gateway side: the task exists there
    for _ in range(20):  # the worker keeps working; the unknown run must never be sent again
        worker.tick()
        time.sleep(0.05)
    sent = submits(local_gateway)
    assert len(sent) == 1, sent
    assert run_of(led, run_id).state == L.UNKNOWN
    task_id = sent[0].get("task_id")
    assert task_id, f"the gateway's log should name the task it created: {sent[0]}"

    # The user pastes the task id (from the gateway's dashboard) into the card's recover box.
    services = SimpleNamespace(ledger=led, worker=worker, client=client_for(local_gateway.url))
    playground.recover(services, task_id, run_id=run_id)
    assert run_of(led, run_id).task_id == task_id
    drive(worker, lambda: archived(led, run_id))
    run = run_of(led, run_id)
    assert run.state == L.COMPLETED and archive.resolve(run.video_path).is_file()
    assert len(submits(local_gateway)) == 1  # recovered, not re-submitted


def test_gateway_down_at_start_sends_nothing_and_the_run_waits_with_words(
    local_gateway: Any, led: Ledger, archive: Archive, workers: WorkerFactory
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    run_id = new_run(led)
    down = workers(led, client_for(closed), archive)
    down.tick()
    run = run_of(led, run_id)
    assert run.state == L.DRAFT, "a submit that never left must stay sendable"
    assert run.error_message and "reach the gateway" in run.error_message
    assert "nothing was sent" in run.error_message
    assert submits(local_gateway) == []

    up = workers(led, client_for(local_gateway.url), archive, owner="w2")
    drive(up, lambda: archived(led, run_id))
    assert len(submits(local_gateway)) == 1
    assert run_of(led, run_id).error_message is None  # the note is gone once things work again


# ---------------------------------------------------------------------------------- polls


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"mode": "status", "status": 500}, "HTTP 500"),
        ({"mode": "status", "status": 503}, "HTTP 503"),
        ({"mode": "drop"}, "Could not reach the gateway"),
        ({"mode": "malformed"}, "cannot read"),
        ({"mode": "unknown_status"}, "cannot read"),
    ],
    ids=["500", "503", "drop", "malformed-json", "unknown-status"],
)
def test_poll_fault_is_noted_in_words_the_run_is_kept_and_finishes(
    local_gateway: Any, led: Ledger, archive: Archive, fault: dict, words: str,
    workers: WorkerFactory,
) -> None:
    worker = workers(led, client_for(local_gateway.url), archive)
    run_id = new_run(led)
    worker.tick()
    assert run_of(led, run_id).state == L.QUEUED
    local_gateway.control("faults", endpoint="query", count=1, **fault)
    drive(worker, lambda: bool(run_of(led, run_id).error_message), limit=20)
    run = run_of(led, run_id)
    assert run.state in (L.QUEUED, L.IN_PROGRESS), "a failed status check must not end the run"
    assert words in run.error_message and "again" in run.error_message
    assert run.task_id
    assert worker.stats["errors"] == 0, "the fault must be handled, not crash a worker step"
    drive(worker, lambda: archived(led, run_id))
    run = run_of(led, run_id)
    assert run.state == L.COMPLETED and run.error_message is None
    assert len(submits(local_gateway)) == 1


def test_429_on_polls_no_request_before_retry_after(
    local_gateway: Any, led: Ledger, archive: Archive, workers: WorkerFactory
) -> None:
    """Retry-After is a promise for the whole process: no GET from any run until it has passed.

    One pool thread, so every poll is sent after the previous answer arrived (concurrent polls already on
    the wire when the 429 comes back cannot know about it).
    """
    local_gateway.control("config", speed=4)  # ~4 s tasks: the fault surely meets a poll
    worker = workers(led, client_for(local_gateway.url), archive, threads=1)
    run_ids = [new_run(led, f"kite number {i}") for i in range(3)]
    drive(worker, lambda: all(run_of(led, r).task_id for r in run_ids), limit=10)
    local_gateway.control("faults", endpoint="query", mode="status", status=429, retry_after=2, count=1)
    drive(worker, lambda: all(archived(led, r) for r in run_ids))
    log = [e for e in local_gateway.requests() if e.get("category") in ("query", "balance")]
    limited = [e for e in log if e["status"] == 429]
    assert len(limited) == 1, limited
    after = [e for e in log if e["t"] > limited[0]["t"]]
    assert after, "polling must carry on after the pause"
    assert min(e["t"] for e in after) - limited[0]["t"] >= 2.0 - SLACK
    assert len(submits(local_gateway)) == 3


# ---------------------------------------------------------------------------------- archiving


def _block_archive(archive: Archive) -> Path:
    """Make videos/ unusable (a plain file where the folder should be): fails even for root."""
    blocker = archive.root / "videos"
    archive.root.mkdir(parents=True, exist_ok=True)
    if blocker.is_dir():
        for f in blocker.iterdir():
            f.unlink()
        blocker.rmdir()
    blocker.write_text("not a folder")
    return blocker


def test_unwritable_archive_folder_is_said_in_words_and_the_run_is_archived_once_fixed(
    local_gateway: Any, led: Ledger, archive: Archive, workers: WorkerFactory
) -> None:
    clock = Clock()
    blocker = _block_archive(archive)
    worker = workers(led, client_for(local_gateway.url), archive, clock=clock)
    run_id = new_run(led)
    drive(worker, lambda: bool(video_gets(local_gateway, run_of(led, run_id).task_id)), limit=20)
    worker.tick()  # the failed store has been handled once the step is drained
    run = run_of(led, run_id)
    assert run.state == L.COMPLETED
    assert run.video_path is None and not run.archive_failed, "a disk problem is retried, not final"
    assert run.error_message, "the card must say why the video is not archived yet (disk/folder problem)"
    assert "archive folder" in run.error_message and "tried again" in run.error_message
    assert worker.stats["errors"] == 0

    blocker.unlink()
    clock.offset += ARCHIVE_SKIP
    drive(worker, lambda: archived(led, run_id))
    run = run_of(led, run_id)
    assert archive.resolve(run.video_path).read_bytes()[4:8] == b"ftyp"
    assert run.error_message is None
    assert len(submits(local_gateway)) == 1


ARCHIVE_SKIP = 700.0  # past the worker's longest archive back-off (10 min)


def test_expired_link_before_archiving_is_explained_and_the_run_kept(
    local_gateway: Any, led: Ledger, tmp_path: Path, workers: WorkerFactory
) -> None:
    """Archiving was held up (disk), and meanwhile the gateway's link expired: say so, try no more."""
    clock = Clock()
    archive = trusting(tmp_path / "held", local_gateway.url)
    blocker = _block_archive(archive)
    worker = workers(led, client_for(local_gateway.url), archive, clock=clock)
    run_id = new_run(led, "a lighthouse at dawn")
    drive(worker, lambda: bool(video_gets(local_gateway, run_of(led, run_id).task_id)))
    task_id = run_of(led, run_id).task_id
    assert run_of(led, run_id).video_path is None
    local_gateway.control("expire", task_id=task_id)
    blocker.unlink()
    clock.offset += ARCHIVE_SKIP
    drive(worker, lambda: run_of(led, run_id).archive_failed)

    run = run_of(led, run_id)
    assert run.state == L.COMPLETED and run.video_path is None, "the run is kept, with its settings"
    assert run.error_code == "expired" and run.error_message == EXPIRED_MESSAGE
    assert "expired" in playground.explain(run)
    assert run.request.prompt == "a lighthouse at dawn"
    clock.offset += ARCHIVE_SKIP
    for _ in range(5):  # expired is final: no more downloads are tried
        worker.tick()
    assert [e["status"] for e in video_gets(local_gateway, task_id)] == [200, 403]


def test_archived_video_survives_its_gateway_link_expiring(
    local_gateway: Any, led: Ledger, archive: Archive, workers: WorkerFactory
) -> None:
    worker = workers(led, client_for(local_gateway.url), archive)
    run_id = new_run(led)
    drive(worker, lambda: archived(led, run_id))
    run = run_of(led, run_id)
    before = archive.resolve(run.video_path).read_bytes()
    local_gateway.control("expire", task_id=run.task_id)
    for _ in range(10):
        worker.tick()
        time.sleep(0.02)
    after = run_of(led, run_id)
    assert after.video_path == run.video_path and not after.archive_failed
    assert archive.resolve(after.video_path).read_bytes() == before
    assert archive.public_url(after.video_path) == f"/archive/{after.video_path}"


# ---------------------------------------------------------------------------------- archive safety


class _Handler(http.server.BaseHTTPRequestHandler):
    """A small real HTTP server for the archive's input checks (wrong type, no length, redirects)."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/page.mp4":
            body = b"<html><body>not a video</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/liar.mp4":  # claims to be a video, is HTML
            body = b"<html>" + b"x" * 200
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/endless.mp4":  # no Content-Length: only the streaming cap can stop it
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            self.wfile.write(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8)
            with contextlib.suppress(OSError):
                for _ in range(64):
                    self.wfile.write(b"\x00" * 65536)
        elif self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def odd_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _no_files(archive: Archive) -> list[Path]:
    return [p for p in archive.root.rglob("*") if p.is_file()]


RUN_ID = "abcdEFGH1234_-xy"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "data:video/mp4;base64,AAAAGGZ0eXBtcDQy", "ftp://example.com/v.mp4",
    "javascript:alert(1)", "http:///no-host.mp4", "//example.com/v.mp4", "/etc/passwd", "",
])
def test_archive_fetches_only_http_urls(archive: Archive, url: str) -> None:
    with pytest.raises(ArchiveError) as info:
        archive.store_video(RUN_ID, url)
    assert info.value.code == "bad_url" and "http" in info.value.message
    assert _no_files(archive) == []


def test_archive_refuses_a_redirect_to_a_local_file(archive: Archive, odd_server: str) -> None:
    """A gateway link that redirects to file:// is a bad link (final), not a network hiccup to retry."""
    with pytest.raises(ArchiveError) as info:
        archive.store_video(RUN_ID, f"{odd_server}/to-file")
    assert info.value.code == "bad_url"
    assert _no_files(archive) == []


@pytest.mark.parametrize("path", ["/page.mp4", "/liar.mp4"])
def test_archive_checks_the_content_type_and_the_bytes(archive: Archive, odd_server: str, path: str) -> None:
    with pytest.raises(ArchiveError) as info:
        archive.store_video(RUN_ID, odd_server + path)
    assert info.value.code == "bad_type" and not info.value.retryable
    assert _no_files(archive) == []


def test_archive_size_cap_stops_a_stream_without_a_length(tmp_path: Path, odd_server: str) -> None:
    small = trusting(tmp_path / "a", odd_server, max_bytes=256 * 1024)
    with pytest.raises(ArchiveError) as info:
        small.store_video(RUN_ID, f"{odd_server}/endless.mp4")
    assert info.value.code == "too_large" and "limit" in info.value.message
    assert _no_files(small) == [], "no half-written file may be left behind"


def test_archive_size_cap_on_a_real_gateway_video(
    local_gateway: Any, led: Ledger, tmp_path: Path, workers: WorkerFactory
) -> None:
    worker = workers(led, client_for(local_gateway.url), trusting(tmp_path / "big", local_gateway.url))
    run_id = new_run(led)
    drive(worker, lambda: archived(led, run_id))
    url = run_of(led, run_id).video_url
    assert url and url.startswith("http")
    tiny = trusting(tmp_path / "tiny", local_gateway.url, max_bytes=4096)
    with pytest.raises(ArchiveError) as info:
        tiny.store_video(RUN_ID, url)
    assert info.value.code == "too_large"
    assert _no_files(tiny) == []


@pytest.mark.parametrize("suffix", ["../../evil", "/etc/passwd", "png/../../x", "p\x00ng", "..", "a b"])
def test_upload_suffixes_cannot_name_a_path(archive: Archive, suffix: str) -> None:
    with pytest.raises(ValueError):
        archive.store_upload(b"\x89PNG fake", suffix)
    assert _no_files(archive) == []


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "videos/../../../x", "a/b/c/d/e/f", "..",
                                    "ok-but-\x00-null"])
def test_run_ids_cannot_name_a_path(archive: Archive, run_id: str) -> None:
    """File names are tokens, never run ids; a bad run id is still refused before anything happens."""
    with pytest.raises(ValueError):
        archive.store_video(run_id, "http://127.0.0.1:9/v.mp4")
    with pytest.raises(ValueError):
        archive.store_poster(run_id, "videos/AAAAAAAAAAAAAAAAAAAAAAAA.mp4")
    assert _no_files(archive) == []


@pytest.mark.parametrize("stored", ["../ledger.db", "/etc/passwd", "videos/../../x.mp4"])
def test_stored_paths_outside_the_archive_are_refused(archive: Archive, stored: str) -> None:
    with pytest.raises(ValueError):
        archive.resolve(stored)
    with pytest.raises(ValueError):
        archive.public_url(stored)


def _png(size: tuple[int, int] = (400, 400)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_uploaded_file_name_cannot_escape_the_archive(
    local_gateway: Any, led: Ledger, archive: Archive, tmp_path: Path
) -> None:
    """The user's file name goes to the gateway as a label only; our copy is named by its sha256."""
    client = client_for(local_gateway.url)
    services = SimpleNamespace(ledger=led, client=client, archive=archive, worker=None)
    data = _png()
    url, problems = playground.upload_frame(services, data, "../../../../tmp/escape/evil.png")
    assert url and url.startswith("http") and not [p for p in problems if p.level == "error"]
    files = _no_files(archive)
    assert len(files) == 1
    root = archive.root.resolve()
    assert files[0].resolve().is_relative_to(root)
    assert files[0].parent.name == "uploads" and files[0].stem == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "escape").exists() and not Path("/tmp/escape/evil.png").exists()
