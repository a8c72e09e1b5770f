"""The worker over real HTTP against the local gateway, with a real SQLite ledger and a real archive folder.

Each test states one promise: a run is submitted once and archived; failures are explained and not
billed; Retry-After is honoured; faults on polls are retried with a note; a submit that may have reached
the gateway is never sent again; expired links and unwritable folders are explained; a new worker on
the same ledger finishes what an old one started.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest

from lib import ledger as L
from lib.archive import Archive
from lib.contract import VideoRequest
from lib.gateway import GatewayClient
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.services import worker_client
from lib.worker import Worker

FAST = 40.0          # gateway clock speed for most tests: a std 5 s clip "takes" well under a second
FIRST_LOOK = 0.2


def wait_for(pred: Callable[[], object], timeout: float = 30.0, step: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


class Rig:
    """A worker wired to the test gateway, the way lib/services wires it."""

    def __init__(self, gateway, ledger: Ledger, root: Path, *, client: GatewayClient | None = None,
                 **worker_kw) -> None:
        self.gateway = gateway
        self.ledger = ledger
        # as lib/services builds it: the gateway's own origin (127.0.0.1 here) is the one trusted host
        self.archive = Archive(root, fetcher=SafeFetcher(FetchPolicy.for_gateway(gateway.url)))
        self.client = client or worker_client(gateway.url, gateway.key, RateLimiter())
        worker_kw.setdefault("first_look", FIRST_LOOK)
        worker_kw.setdefault("idle", 0.1)
        self.worker = Worker(ledger, self.client, self.archive, **worker_kw)

    def add(self, prompt: str = "a red kite over the sea", **kw) -> str:
        run_id = Ledger.new_id()
        self.ledger.create_run(run_id, VideoRequest(prompt=prompt, **kw), 0.18)
        self.worker.wake()
        return run_id

    def run(self, run_id: str) -> L.Run:
        run = self.ledger.get(run_id)
        assert run is not None
        return run

    def until(self, run_id: str, pred: Callable[[L.Run], bool], timeout: float = 30.0) -> L.Run:
        def check() -> L.Run | None:
            run = self.run(run_id)
            return run if pred(run) else None

        return wait_for(check, timeout)  # type: ignore[return-value]

    def archived(self, run_id: str, timeout: float = 30.0) -> L.Run:
        return self.until(run_id, lambda r: r.video_path is not None, timeout)

    def submits(self) -> list[dict]:
        return self.gateway.requests("submit")


@pytest.fixture
def rig(local_gateway, sqlite_ledger, tmp_path) -> Iterator[Rig]:
    local_gateway.control("config", speed=FAST)
    r = Rig(local_gateway, sqlite_ledger, tmp_path / "archive")
    yield r
    r.worker.stop()


def note(run: L.Run) -> str | None:
    """The worker's transient note (ledger.set_note keeps it in error_message while error_code is empty)."""
    return run.error_message if run.error_code is None else None


def probe(path: Path) -> tuple[int, int, float, float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        seconds = float(c.duration) / av.time_base if c.duration else float(s.duration * s.time_base)
        return s.codec_context.width, s.codec_context.height, seconds, float(s.average_rate)


# ----------------------------------------------------------------------------------------- happy path


@pytest.mark.parametrize(
    ("mode", "aspect", "size"), [("std", "16:9", (1280, 720)), ("pro", "9:16", (1080, 1920))]
)
def test_submit_poll_complete_archive(rig: Rig, mode, aspect, size):
    rig.worker.start()
    run_id = rig.add(mode=mode, aspect_ratio=aspect, duration=5)
    run = rig.archived(run_id, timeout=60)
    assert run.state == L.COMPLETED and run.task_id and run.error_code is None
    video = rig.archive.resolve(run.video_path)
    w, h, seconds, fps = probe(video)
    assert (w, h) == size
    assert seconds == pytest.approx(5.0, abs=0.1)
    assert fps == pytest.approx(24.0)
    poster = rig.archive.resolve(run.poster_path)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    # its own token, not the run id: a direct video URL does not lead to the run
    assert re.fullmatch(r"videos/[A-Za-z0-9_-]{24}\.mp4", run.video_path) and run_id not in run.video_path
    assert rig.archive.public_url(run.video_path) == f"/archive/{run.video_path}"
    assert len(rig.submits()) == 1


def test_archived_video_is_never_touched_again(rig: Rig):
    rig.worker.start()
    run = rig.archived(rig.add(aspect_ratio="1:1"))
    video = rig.archive.resolve(run.video_path)
    before = (video.stat().st_mtime_ns, len(rig.gateway.requests("file")))
    rig.ledger.release(run.run_id, "nobody", time.time())  # even if something marks it due again
    time.sleep(0.5)
    assert rig.worker.tick() == 0
    assert (video.stat().st_mtime_ns, len(rig.gateway.requests("file"))) == before


# ----------------------------------------------------------------------------------------- failures


def test_failed_task_is_explained_and_not_billed(rig: Rig):
    rig.gateway.control("fail_next", count=1)
    rig.worker.start()
    run = rig.until(rig.add(aspect_ratio="1:1"), lambda r: r.state == L.FAILED)
    assert run.error_message and len(run.error_message.split()) >= 3
    assert not run.billed
    assert run.video_path is None


@pytest.mark.parametrize(("status", "words"), [(402, "nothing was billed"), (400, "Nothing was billed")])
def test_refused_submit_fails_with_words_not_billed(rig: Rig, status, words):
    rig.gateway.control("faults", endpoint="submit", mode="status", status=status)
    rig.worker.start()
    run = rig.until(rig.add(aspect_ratio="1:1"), lambda r: r.state == L.FAILED)
    assert words in run.error_message
    assert not run.billed and run.task_id is None
    time.sleep(0.5)
    assert len(rig.submits()) == 1


def test_rate_limited_submit_goes_back_to_draft_and_is_sent_after_retry_after(rig: Rig):
    rig.gateway.control("faults", endpoint="submit", mode="status", status=429, retry_after=1)
    rig.worker.start()
    run_id = rig.add(aspect_ratio="1:1")
    noted = rig.until(run_id, lambda r: r.state == L.DRAFT and bool(note(r)), timeout=10)
    assert "429" in note(noted)
    rig.archived(run_id)
    submits = rig.submits()
    assert [s["status"] for s in submits] == [429, 200]
    assert submits[1]["t"] - submits[0]["t"] >= 1.0 - 0.05


def test_gateway_unreachable_before_sending_keeps_a_draft_with_a_note(local_gateway, sqlite_ledger, tmp_path):
    dead = GatewayClient("http://127.0.0.1:9", "k", timeout=(0.5, 1.0))  # discard port: connection refused
    r = Rig(local_gateway, sqlite_ledger, tmp_path / "archive", client=dead)
    run_id = r.add()
    r.worker.tick()
    run = r.run(run_id)
    assert run.state == L.DRAFT and run.task_id is None
    assert "nothing was sent" in note(run)
    assert run.next_poll_at > time.time()
    r.worker.stop()


def test_submit_timeout_is_unknown_and_never_resubmitted(local_gateway, sqlite_ledger, tmp_path):
    local_gateway.control("config", speed=FAST)
    local_gateway.control("faults", endpoint="submit", mode="delay", delay=2.0)
    impatient = GatewayClient(local_gateway.url, local_gateway.key, timeout=(2.0, 0.5), limiter=RateLimiter())
    r = Rig(local_gateway, sqlite_ledger, tmp_path / "archive", client=impatient)
    run_id = r.add(aspect_ratio="1:1")
    r.worker.start()
    run = r.until(run_id, lambda x: x.state == L.UNKNOWN, timeout=10)
    assert "unknown" in run.error_message
    time.sleep(2.5)  # the gateway did create the task; the worker must still not send it again
    for _ in range(3):
        r.worker.wake()
        time.sleep(0.2)
    assert r.run(run_id).state == L.UNKNOWN
    assert len(r.submits()) == 1
    r.worker.stop()


def test_poll_429_is_honoured(rig: Rig):
    rig.worker.start()
    run_id = rig.add(aspect_ratio="1:1", duration=10)
    rig.until(run_id, lambda r: r.task_id is not None)
    rig.gateway.control("faults", endpoint="query", mode="status", status=429, retry_after=2)
    noted = rig.until(run_id, lambda r: "429" in (note(r) or ""), timeout=10)
    assert "slow down" in note(noted)
    rig.archived(run_id)
    queries = [q for q in rig.gateway.requests("query")]
    limited = [i for i, q in enumerate(queries) if q["status"] == 429]
    assert len(limited) == 1
    after = queries[limited[0] + 1 :]
    assert after, "the run was polled again"
    assert after[0]["t"] - queries[limited[0]]["t"] >= 2.0 - 0.05
    assert note(rig.run(run_id)) is None


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"mode": "status", "status": 500, "count": 2}, "HTTP 500"),
        ({"mode": "drop", "count": 2}, "Could not reach the gateway"),
        ({"mode": "malformed"}, "cannot read"),
        ({"mode": "unknown_status"}, "cannot read"),
    ],
)
def test_poll_faults_are_retried_with_a_note(rig: Rig, fault, words):
    rig.worker.start()
    run_id = rig.add(aspect_ratio="1:1", duration=10)
    rig.until(run_id, lambda r: r.task_id is not None)
    rig.gateway.control("faults", endpoint="query", **fault)
    noted = rig.until(run_id, lambda r: bool(note(r)), timeout=10)
    assert words in note(noted)
    run = rig.archived(run_id, timeout=40)
    assert run.state == L.COMPLETED and note(run) is None
    assert len(rig.submits()) == 1


# ----------------------------------------------------------------------------------------- archive


def _block(root: Path) -> None:
    """Make the archive unwritable even for root: a plain file where the videos folder must go."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "videos").write_text("not a folder")


def test_recovered_task_the_gateway_does_not_know_ends_failed_in_words(rig: Rig):
    run = rig.ledger.recover("video_typo_never_made")
    rig.worker.start()
    done = rig.until(run.run_id, lambda r: r.state == L.FAILED, timeout=30)
    assert done.error_code == "task_not_found"
    assert "has no task video_typo_never_made" in (done.error_message or "")
    assert not done.billed
    queries = [r for r in rig.gateway.requests("query") if "video_typo_never_made" in r["path"]]
    assert len(queries) == 3  # gives up after three denials instead of polling forever
    assert rig.submits() == []


class HiccupLedger(Ledger):
    """A real ledger whose first two attempts to record a submit fail, as a busy SQLite file would."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.hiccups = 2

    def mark_submitted(self, *args, **kwargs) -> None:
        if self.hiccups:
            self.hiccups -= 1
            raise L.LedgerError("database is locked")
        super().mark_submitted(*args, **kwargs)


def test_a_ledger_hiccup_after_the_gateway_took_the_run_does_not_lose_its_task_id(
        local_gateway, sqlite_url, tmp_path):
    local_gateway.control("config", speed=FAST)
    r = Rig(local_gateway, HiccupLedger(sqlite_url), tmp_path / "archive")
    try:
        run_id = r.add("a lantern on a jetty")
        r.worker.start()
        done = r.archived(run_id)
        assert done.task_id and r.ledger.hiccups == 0
        assert len(r.submits()) == 1
    finally:
        r.worker.stop()


def test_unwritable_archive_explains_and_keeps_the_run(local_gateway, sqlite_ledger, tmp_path):
    local_gateway.control("config", speed=FAST)
    root = tmp_path / "archive"
    _block(root)
    r = Rig(local_gateway, sqlite_ledger, root, archive_retry=0.5)
    r.worker.start()
    run_id = r.add(aspect_ratio="1:1")
    noted = r.until(run_id, lambda x: x.state == L.COMPLETED and bool(note(x)), timeout=20)
    assert "Could not save the video" in note(noted) and "tried again" in note(noted)
    assert noted.error_code is None and noted.video_path is None  # recoverable: nothing final recorded
    (root / "videos").unlink()
    run = r.archived(run_id, timeout=20)
    assert note(run) is None
    r.worker.stop()


def test_expired_link_before_archiving_says_so(local_gateway, sqlite_ledger, tmp_path):
    local_gateway.control("config", speed=FAST)
    root = tmp_path / "archive"
    _block(root)
    r = Rig(local_gateway, sqlite_ledger, root, archive_retry=1.0)
    r.worker.start()
    run_id = r.add(aspect_ratio="1:1")
    run = r.until(run_id, lambda x: x.state == L.COMPLETED and bool(note(x)), timeout=20)
    local_gateway.control("expire", task_id=run.task_id)
    (root / "videos").unlink()
    run = r.until(run_id, lambda x: x.error_code is not None, timeout=20)
    assert run.error_code == "expired"
    assert "expired" in run.error_message and "Re-run" in run.error_message
    assert run.video_path is None and run.state == L.COMPLETED
    r.worker.stop()


# ----------------------------------------------------------------------------------------- restart


def test_new_worker_finishes_what_a_stopped_one_started(local_gateway, sqlite_url, tmp_path):
    local_gateway.control("config", speed=4.0)  # std 5 s takes ~3.75 s: still running when A stops
    root = tmp_path / "archive"
    ledger_a = Ledger(sqlite_url)
    a = Rig(local_gateway, ledger_a, root, first_look=0.5)
    ids = [a.add(prompt=f"lantern {i}", aspect_ratio="1:1") for i in range(10)]
    a.worker.start()
    wait_for(lambda: all(a.run(i).task_id for i in ids), timeout=20)
    a.worker.stop()
    unfinished = [i for i in ids if a.run(i).video_path is None]
    assert unfinished, "worker A finished everything before it was stopped; the test proves nothing"
    ledger_a.close()

    ledger_b = Ledger(sqlite_url)  # a new process: new ledger object, new worker, empty memory
    b = Rig(local_gateway, ledger_b, root, first_look=0.5)
    b.worker.start()
    for i in ids:
        run = b.archived(i, timeout=60)
        assert run.state == L.COMPLETED
    b.worker.stop()
    submits = local_gateway.requests("submit")
    accepted = [r for r in submits if r["status"] == 200]
    assert len(accepted) == 10 and len({r["task_id"] for r in accepted}) == 10
    # A 429 refusal creates no task and costs nothing; on a loaded machine one may slip past our limiter.
    assert all(r["status"] == 429 for r in submits if r["status"] != 200)
    ledger_b.close()
