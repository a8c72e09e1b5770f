"""What a worker claims and how long it holds it, against the real local gateway and a real SQLite ledger.

The promises: a press is sent while earlier runs' archive downloads are still going (the press that once
waited over 30 s sat behind a full set of claimed archive steps); a wake() landing in the gap between a
pass's claim query and its sleep is not lost; a worker claims only what its pools can run now (nothing
claimed waits in a queue); a download slower than the lease keeps its run (the lease is renewed), so no
other worker fetches the same video again.

The gate below holds archive downloads open until the test lets them go: the order of events is fixed
by the test, not by how fast this machine happens to be.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lib import ledger as L
from lib.archive import Archive
from lib.contract import VideoRequest
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.services import worker_client
from lib.worker import Worker
from tests.unit.test_worker import FAST, Rig, wait_for


class GatedArchive(Archive):
    """The real archive, whose downloads first wait for the test's gate (and count who is waiting)."""

    def __init__(self, root: Path, fetcher: SafeFetcher) -> None:
        super().__init__(root, fetcher=fetcher)
        self.gate = threading.Event()
        self.waiting = 0
        self._count_lock = threading.Lock()

    def store_video(self, run_id: str, url: str) -> str:
        with self._count_lock:
            self.waiting += 1
        self.gate.wait(60)
        return super().store_video(run_id, url)


@pytest.fixture
def gated(local_gateway, sqlite_ledger, tmp_path) -> Iterator[Rig]:
    local_gateway.control("config", speed=FAST)
    rig = Rig(local_gateway, sqlite_ledger, tmp_path / "archive", threads=1, archive_threads=1)
    rig.archive = GatedArchive(tmp_path / "archive", SafeFetcher(FetchPolicy.for_gateway(local_gateway.url)))
    rig.worker.archive = rig.archive
    yield rig
    rig.archive.gate.set()
    rig.worker.stop()


def leased(ledger: Ledger) -> dict[str, str | None]:
    c = L.runs_table.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(c.run_id, c.lease_owner).where(c.lease_owner.isnot(None))).all()
    return {r.run_id: r.lease_owner for r in rows}


def test_a_press_is_sent_while_earlier_runs_are_still_downloading(gated: Rig) -> None:
    """Three finished runs wait on their downloads (one archive thread, the gate shut). Before, the
    worker claimed up to 2 x threads runs across both pools, so two archive steps (one running, one
    queued) filled every slot and a new draft was not even claimed until a download ended."""
    gated.worker.start()
    earlier = [gated.add(f"an earlier run {i}") for i in range(3)]
    wait_for(lambda: all(gated.run(r).state == L.COMPLETED for r in earlier), 60)
    wait_for(lambda: gated.archive.waiting >= 1, 30)
    press = gated.add("the press that must not wait")
    gated.until(press, lambda r: r.task_id is not None, timeout=30)
    assert not gated.archive.gate.is_set()
    assert all(gated.run(r).video_path is None for r in earlier)  # every download was still held
    # only the download in progress is claimed: the other two wait in the ledger for any worker
    held = leased(gated.ledger)
    assert sum(1 for r in earlier if r in held) == 1, held
    gated.archive.gate.set()
    for r in [*earlier, press]:
        gated.archived(r, timeout=60)
    assert len(gated.submits()) == 4


def test_a_wake_in_the_gap_after_the_claim_query_is_not_lost(local_gateway, sqlite_ledger, tmp_path) -> None:
    """A page's press commits and wakes the worker just after a pass's claim query (the query did not see
    it) and before the pass sleeps. The worker's idle sleep is 30 s here, so a lost wake would leave
    the draft unsent for 30 s; it must go at once."""
    local_gateway.control("config", speed=FAST)
    rig = Rig(local_gateway, sqlite_ledger, tmp_path / "archive", idle=30.0)
    real_claim = rig.ledger.claim_due
    pressed: list[str] = []

    def claim_then_press(*args: Any, **kw: Any) -> list[L.Run]:
        runs = real_claim(*args, **kw)
        if not pressed and kw.get("archive") is True:  # the pass's last query has run: now the press
            pressed.append(rig.add("pressed in the gap"))   # writes the draft and calls wake()
        return runs

    rig.ledger.claim_due = claim_then_press  # type: ignore[method-assign]
    try:
        rig.worker.start()
        wait_for(lambda: pressed, 10)
        started = time.monotonic()
        rig.until(pressed[0], lambda r: r.task_id is not None, timeout=25)
        assert time.monotonic() - started < 25
    finally:
        rig.worker.stop()


def test_a_worker_claims_only_what_its_pools_can_run(local_gateway, sqlite_ledger, tmp_path) -> None:
    """Ten drafts, two gateway threads: one pass claims two; the other eight stay free for any worker."""
    local_gateway.control("config", speed=FAST)
    rig = Rig(local_gateway, sqlite_ledger, tmp_path / "archive", threads=2, archive_threads=1,
              first_look=60.0)
    # The two claimed steps wait until the checks are done: a step that had already sent its draft and
    # released its lease (a quick machine: leases 0 == 2) or made it due (a 0.2 s first look: 9 == 8)
    # would change what there is to count.
    go = threading.Event()
    real_step = rig.worker._step

    def held_step(run: L.Run) -> None:
        go.wait(30)
        real_step(run)

    rig.worker._step = held_step  # type: ignore[method-assign]
    for i in range(10):
        rig.ledger.create_run(Ledger.new_id(), VideoRequest(prompt=f"draft {i}"), 0.18)
    try:
        assert rig.worker._dispatch() == 2
        assert len(leased(rig.ledger)) == 2
        other = Worker(rig.ledger, rig.client, rig.archive, owner="other", threads=3)
        try:
            assert len(other.ledger.claim_due(time.time(), "other", limit=10)) == 8
        finally:
            other.stop()
    finally:
        go.set()
        rig.worker._drain()
        rig.worker.stop()


def test_a_download_slower_than_the_lease_keeps_its_run(local_gateway, sqlite_ledger, tmp_path) -> None:
    """The gateway holds the video file 4 s; the lease is 1 s. The worker renews its lease while it
    downloads, so a second worker polling the ledger all along never claims the run, and the video is
    fetched once."""
    local_gateway.control("config", speed=FAST)
    fetcher = SafeFetcher(FetchPolicy.for_gateway(local_gateway.url))
    client = worker_client(local_gateway.url, local_gateway.key, RateLimiter())
    first = Worker(sqlite_ledger, client, Archive(tmp_path / "a", fetcher=fetcher), owner="first",
                   lease=1.0, idle=0.1, first_look=0.2)
    run_id = Ledger.new_id()
    sqlite_ledger.create_run(run_id, VideoRequest(prompt="a slow download"), 0.18)
    local_gateway.control("faults", endpoint="file", mode="delay", delay=4.0, count=1)
    first.start()
    try:
        wait_for(lambda: local_gateway.requests("file"), 30)  # the download has started (and hangs)
        grabbed: list[str] = []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and sqlite_ledger.get(run_id).video_path is None:
            grabbed += [r.run_id for r in sqlite_ledger.claim_due(time.time(), "second", limit=5, lease=1.0)]
            time.sleep(0.2)
        assert grabbed == []
        run = wait_for(lambda: (r := sqlite_ledger.get(run_id)) and r.video_path and r, 30)
        assert run.video_path
    finally:
        first.stop()
    videos = [e for e in local_gateway.requests("file") if e["path"].endswith(".mp4")]
    assert len(videos) == 1, videos
