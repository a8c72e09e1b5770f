"""Attacks from a hostile gateway on the real worker, ledger and archive (issue 13, items 1 and 2).

The gateway is a real HTTP server on 127.0.0.1 (tests/fixtures/hostile.py) that speaks the task JSON and
completes each task with a link the test chose. Beside it runs a "secret" internal service on another
loopback port, counting every connection. Each test drives the app's real Worker (as lib/services wires
it: the gateway's own origin trusted, nothing else) until the run settles, then checks what the attacker
got: no file read, no connection to the secret service, nothing saved, memory and time bounded, and the
run kept with words for the user.
"""
from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lib import ledger as L
from lib.archive import Archive, ArchiveError
from lib.contract import VideoRequest
from lib.gateway import GatewayClient
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.worker import Worker
from tests.fixtures.hostile import DRIP_SECONDS, SECRET, HostileGateway, SecretServer

REQ = VideoRequest(prompt="a paper boat on a rain puddle", mode="std", duration=5, aspect_ratio="1:1")


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def app_archive(root: Path, gw: HostileGateway, **fetch_kw: Any) -> Archive:
    """The archive exactly as lib/services builds it for a gateway at gw.url."""
    root.mkdir(parents=True, exist_ok=True)
    return Archive(root, fetcher=SafeFetcher(FetchPolicy.for_gateway(gw.url), **fetch_kw))


class Rig:
    def __init__(self, gw: HostileGateway, led: Ledger, archive: Archive) -> None:
        self.gw, self.led, self.archive = gw, led, archive
        client = GatewayClient(gw.url, "test-key", timeout=(2.0, 5.0), limiter=RateLimiter())
        self.worker = Worker(led, client, archive, threads=2, first_look=0.1)

    def run_until(self, done: Callable[[L.Run], bool], limit: float = 30.0) -> L.Run:
        run_id = Ledger.new_id()
        self.led.create_run(run_id, REQ, 0.18)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.worker.tick()
            run = self.led.get(run_id)
            assert run is not None
            if done(run):
                return run
            time.sleep(0.05)
        raise AssertionError(f"run never settled: {self.led.get(run_id)}")

    def files(self) -> list[Path]:
        return [p for p in self.archive.root.rglob("*") if p.is_file()]


@pytest.fixture
def rig(hostile_gateway: HostileGateway, led: Ledger, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(hostile_gateway, led, app_archive(tmp_path / "archive", hostile_gateway))
    yield r
    r.worker.stop(timeout=5)


def settled(run: L.Run) -> bool:
    return run.video_path is not None or run.error_code is not None


def ledger_text(led: Ledger, run_id: str) -> str:
    run = led.get(run_id)
    return repr(run)


# ------------------------------------------------------------------ links that are not http(s) at all

NOT_HTTP = {
    "server-path": "/proc/self/environ",
    "file-url": "file:///proc/self/environ",
    "data-url": "data:video/mp4;base64,AAAAGGZ0eXBtcDQy",
    "javascript": "javascript:fetch('/_stcore/health')",
    "spaces-around-a-path": "   /etc/passwd  ",
    "newline-smuggled-path": "https://cdn.example.com/v.mp4\n/proc/self/environ",
    "relative": "videos/../../../proc/self/environ",
    "protocol-relative": "//127.0.0.1:{secret_port}/admin",
    "userinfo": "http://cdn.example.com@127.0.0.1:{secret_port}/admin",
    "backslash": "http://cdn.example.com\\@127.0.0.1:{secret_port}/admin",
    "tab-in-scheme": "ht\ttp://127.0.0.1:{secret_port}/admin",
}


@pytest.mark.parametrize("link", list(NOT_HTTP.values()), ids=list(NOT_HTTP))
def test_a_link_that_is_not_absolute_http_is_refused_before_anything_reads_it(
    rig: Rig, secret_server: SecretServer, link: str
) -> None:
    rig.gw.answer(video_url=link, thumbnail_url=link)
    run = rig.run_until(settled)
    # kept, with words, and without the link: nothing downstream (player, archive, share view) can use it
    assert run.state == L.COMPLETED and run.video_path is None
    assert run.error_code == "bad_url"
    assert "refused it and never opened it" in run.error_message
    assert run.video_url is None and run.thumbnail_url is None
    stored = ledger_text(rig.led, run.run_id)
    assert "environ" not in stored and "passwd" not in stored
    assert run.request.prompt == REQ.prompt  # the settings are kept for a re-run
    assert rig.files() == []
    assert rig.gw.file_gets() == [] and secret_server.connections == 0


# ------------------------------------------------------------------ http(s) links to places we never go

BLOCKED = {
    "other-loopback-port": "http://127.0.0.1:{secret_port}/admin/secret",
    "decimal-ip": "http://2130706433:{secret_port}/admin",
    "hex-ip": "http://0x7f.1:{secret_port}/admin",
    "octal-ip": "http://017700000001:{secret_port}/admin",
    "short-ip": "http://127.1:{secret_port}/admin",
    "localhost": "http://localhost:{secret_port}/admin",
    "ipv4-mapped-ipv6": "http://[::ffff:127.0.0.1]:{secret_port}/admin",
    "zero-address": "http://0.0.0.0:{secret_port}/admin",
    "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "metadata-ipv6": "http://[fd00:ec2::254]/latest/meta-data/",
    "metadata-nat64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "private-network": "http://10.0.0.1/v.mp4",
    "redirect-to-another-loopback-port": "{gw}/files/to-secret",
    "redirect-to-a-decimal-ip": "{gw}/files/to-secret-decimal",
}


@pytest.mark.parametrize("link", list(BLOCKED.values()), ids=list(BLOCKED))
def test_a_link_to_a_local_or_private_address_is_never_connected_to(
    rig: Rig, secret_server: SecretServer, link: str
) -> None:
    rig.gw.answer(video_url=link)
    started = time.monotonic()
    run = rig.run_until(settled)
    assert run.state == L.COMPLETED and run.video_path is None
    assert run.error_code == "bad_url" and run.archive_failed  # final: not retried
    assert "local or private network address" in run.error_message
    assert rig.files() == []
    assert secret_server.connections == 0 and secret_server.hits == []
    assert SECRET not in ledger_text(rig.led, run.run_id)
    assert time.monotonic() - started < 10  # refused before any connection, not after a timeout


def test_a_redirect_to_a_local_file_is_refused(rig: Rig, secret_server: SecretServer) -> None:
    rig.gw.answer(video_url="{gw}/files/to-file")
    run = rig.run_until(settled)
    assert run.error_code == "bad_url" and "not an http(s) web address" in run.error_message
    assert rig.files() == [] and secret_server.connections == 0


def test_hostile_thumbnails_are_dropped_and_the_poster_comes_from_the_video(
    rig: Rig, secret_server: SecretServer
) -> None:
    for thumb in ("/proc/self/environ", "{gw}/files/to-secret", "http://127.0.0.1:{secret_port}/a.jpg"):
        rig.gw.answer(video_url="{gw}/files/ok.mp4", thumbnail_url=thumb)
        run = rig.run_until(settled)
        assert run.video_path and run.poster_path, run
        poster = rig.archive.resolve(run.poster_path).read_bytes()
        assert poster[:3] == b"\xff\xd8\xff" and SECRET.encode() not in poster
    assert secret_server.connections == 0


# ------------------------------------------------------------------ hostile bodies, from the gateway's origin


def test_the_gateway_origin_is_trusted_and_a_same_origin_redirect_is_followed(rig: Rig) -> None:
    """The control case: the refusals above are the policy, not a broken download."""
    rig.gw.answer(video_url="{gw}/files/to-self", thumbnail_url="{gw}/files/poster.jpg")
    run = rig.run_until(settled)
    assert run.error_code is None and run.video_path and run.poster_path
    assert rig.archive.resolve(run.video_path).read_bytes()[4:8] == b"ftyp"
    assert "/files/to-self" in rig.gw.file_gets() and "/files/ok.mp4" in rig.gw.file_gets()


def test_without_trust_even_the_gateway_origin_on_loopback_is_refused(
    hostile_gateway: HostileGateway, tmp_path: Path
) -> None:
    """Trust is explicit: an Archive built without the gateway's origin refuses 127.0.0.1 like any other."""
    bare = Archive(tmp_path / "bare")
    with pytest.raises(ArchiveError) as info:
        bare.store_video("run_abcdefgh12", hostile_gateway.url + "/files/ok.mp4")
    assert info.value.code == "bad_url" and not info.value.retryable
    assert hostile_gateway.file_gets() == []


@pytest.mark.parametrize(("path", "code"), [
    ("/files/page.mp4", "bad_type"), ("/files/gzip.mp4", "bad_type"), ("/files/huge.mp4", "too_large"),
])
def test_bodies_that_are_not_a_video_or_too_large_are_refused_with_words(
    rig: Rig, path: str, code: str
) -> None:
    rig.gw.answer(video_url="{gw}" + path)
    run = rig.run_until(settled)
    assert run.state == L.COMPLETED and run.video_path is None and run.error_code == code
    assert run.error_message and "not saved" in run.error_message
    assert rig.files() == []
    if path == "/files/huge.mp4":  # refused on its Content-Length: at most a few socket buffers were sent
        assert rig.gw.sent.get(path, 0) < 16 * 2**20


def test_an_endless_body_stops_at_the_cap_with_bounded_memory(
    hostile_gateway: HostileGateway, tmp_path: Path
) -> None:
    """96 MB offered without a length, a 16 MB cap: the download stops there and holds ~a chunk in memory."""
    archive = app_archive(tmp_path / "archive", hostile_gateway)
    archive.max_bytes = 16 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError) as info:
            archive.store_video("run_abcdefgh12", hostile_gateway.url + "/files/endless.mp4")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_large" and "limit of 16 MB" in info.value.message
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MB while streaming"
    assert [p for p in archive.root.rglob("*") if p.is_file()] == []  # the partial file is gone
    deadline = time.monotonic() + 5
    while "/files/endless.mp4" not in hostile_gateway.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hostile_gateway.sent["/files/endless.mp4"] < 64 * 2**20  # we hung up, it could not finish


def test_a_slow_drip_body_is_cut_at_the_time_cap_and_retried_later_with_words(
    hostile_gateway: HostileGateway, led: Ledger, tmp_path: Path
) -> None:
    """1 byte every 0.2 s (each read in time): the total cap (2 s here) ends it; the run waits, in words."""
    archive = app_archive(tmp_path / "archive", hostile_gateway, total_timeout=2.0, read_timeout=1.0)
    rig = Rig(hostile_gateway, led, archive)
    try:
        hostile_gateway.answer(video_url="{gw}/files/drip.mp4")
        started = time.monotonic()
        run = rig.run_until(lambda r: bool(r.error_message and "Next try" in r.error_message), limit=20)
        took = time.monotonic() - started
    finally:
        rig.worker.stop(timeout=5)
    assert run.state == L.COMPLETED and run.video_path is None
    assert "Could not download the video" in run.error_message  # a note; the run stays to archive
    assert not run.archive_failed  # not given up: the worker will try again after its back-off
    assert took < 2.0 + 3.0, f"{took:.1f} s"
    assert rig.files() == []
    deadline = time.monotonic() + 3
    while "/files/drip.mp4" not in hostile_gateway.hangups and time.monotonic() < deadline:
        time.sleep(0.05)
    hung = hostile_gateway.hangups["/files/drip.mp4"]
    assert hung < 2.0 + 2 * DRIP_SECONDS + 1.0, f"the connection stayed open {hung:.1f} s"
