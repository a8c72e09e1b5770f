"""What a finished run's video area shows (lib/playback.py): never a source that was not vetted."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lib.playback import LINK_EXPIRED, NOT_PLAYABLE, SAVING, playback, vetted_http_url

NOW = 1_800_000_000.0
GATEWAY = "https://files.toapis.com/videos/tsk_01abc/clip.mp4?sig=x"


@dataclass
class FakeRun:
    state: str = "completed"
    video_path: str | None = None
    video_url: str | None = GATEWAY
    expires_at: float | None = NOW + 3600
    error_code: str | None = None
    error_message: str | None = None


@pytest.mark.parametrize("url", [
    "https://files.toapis.com/v.mp4", "http://127.0.0.1:8765/files/videos/t.mp4", GATEWAY,
])
def test_absolute_http_urls_are_vetted(url: str) -> None:
    assert vetted_http_url(url) == url


@pytest.mark.parametrize("url", [
    None, "", "/proc/self/environ", "proc/self/environ", "videos/x.mp4", "file:///etc/passwd",
    "data:video/mp4;base64,AAAA", "javascript:alert(1)", "ftp://x/y.mp4", "//evil.example/x.mp4",
    "https://", "https://user:pw@files.example/x.mp4", "https://files.example/x y.mp4",
    "https://files.example/x\n.mp4", "https://files.example\\@evil/x.mp4", "http://host:99999/x",
    "https://files.example/" + "x" * 5000, 42, b"https://x/y",
])
def test_anything_else_is_not(url: object) -> None:
    assert vetted_http_url(url) is None


def test_not_finished_shows_nothing() -> None:
    assert playback(FakeRun(state="in_progress"), NOW).kind == "none"


def test_archived_plays_our_copy_even_if_the_gateway_link_is_bad() -> None:
    shown = playback(FakeRun(video_path="videos/tok12345.mp4", video_url="/proc/self/environ"), NOW)
    assert shown.kind == "archived" and shown.archive_key == "videos/tok12345.mp4"
    assert shown.gateway_url is None


def test_between_completed_and_archived_it_says_saving_and_offers_no_link() -> None:
    shown = playback(FakeRun(), NOW)
    assert shown.kind == "saving" and shown.message == SAVING and shown.gateway_url is None


def test_while_archiving_is_retried_the_link_is_offered_with_its_expiry() -> None:
    note = "Could not save the video to the archive folder (No space left on device). Next try in 5.0 s."
    shown = playback(FakeRun(error_message=note), NOW)
    assert shown.kind == "retrying" and shown.message == note
    assert shown.gateway_url == GATEWAY and shown.expires_in == pytest.approx(3600)


def test_when_archiving_failed_the_vetted_link_is_offered() -> None:
    shown = playback(FakeRun(error_code="too_large", error_message="The video is larger than …"), NOW)
    assert shown.kind == "failed" and shown.gateway_url == GATEWAY and shown.expires_in == pytest.approx(3600)


@pytest.mark.parametrize("bad", ["/proc/self/environ", "file:///etc/passwd", "../../ledger.db"])
def test_a_link_that_is_not_http_is_never_offered_and_it_says_so(bad: str) -> None:
    shown = playback(FakeRun(video_url=bad, error_code="bad_url", error_message="Not http(s)."), NOW)
    assert shown.kind == "failed" and shown.gateway_url is None and NOT_PLAYABLE in (shown.message or "")
    assert playback(FakeRun(video_url=bad), NOW).gateway_url is None  # saving: nothing either


def test_an_expired_link_is_not_offered() -> None:
    shown = playback(FakeRun(expires_at=NOW - 1, error_code="network", error_message="Gone."), NOW)
    assert shown.gateway_url is None and LINK_EXPIRED in (shown.message or "")
    expired = playback(FakeRun(error_code="expired", error_message="The gateway's link … expired"), NOW)
    assert expired.gateway_url is None and LINK_EXPIRED not in (expired.message or "")


def test_an_http_link_the_archive_refused_is_never_offered() -> None:
    """A link to a private address (or a host off the allow-list) was refused by the archive as bad_url:
    the browser is not pointed at it either, even though it is a well-formed http(s) URL."""
    shown = playback(FakeRun(video_url="http://127.0.0.1:9/admin", error_code="bad_url",
                             error_message="The video link leads to a private address."), NOW)
    assert shown.kind == "failed" and shown.gateway_url is None
