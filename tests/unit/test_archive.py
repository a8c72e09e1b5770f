"""The archive (lib/archive.py): real downloads from the local gateway into a real folder."""
from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from lib.archive import Archive, ArchiveError
from lib.contract import VideoRequest
from lib.gateway import GatewayClient, Task
from lib.safe_fetch import FetchPolicy, SafeFetcher

RUN_ID = "run_abcdefgh12"


def trusting(gw, root: Path, **kw) -> Archive:
    """The archive as the app builds it: the gateway's own origin (127.0.0.1 here) is trusted."""
    return Archive(root, fetcher=SafeFetcher(FetchPolicy.for_gateway(gw.url)), **kw)


@pytest.fixture
def done(local_gateway) -> Task:
    """One completed 720x720 task on the local gateway."""
    local_gateway.control("config", speed=40.0)
    client = GatewayClient(local_gateway.url, local_gateway.key)
    task = client.submit(VideoRequest(prompt="a lighthouse at dusk", aspect_ratio="1:1"))
    deadline = time.monotonic() + 30
    while not task.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
        task = client.get_task(task.id)
    assert task.status == "completed" and task.video_url
    return task


def test_store_video_is_named_by_run_and_is_a_playable_mp4(local_gateway, done: Task, tmp_path: Path):
    arch = trusting(local_gateway, tmp_path)
    path = arch.store_video(RUN_ID, done.video_url)
    assert path == tmp_path / "videos" / f"{RUN_ID}.mp4"
    with av.open(str(path)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (720, 720)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".part-")]  # no temp file left


def test_poster_from_frame_zero_is_a_320px_jpeg(local_gateway, done: Task, tmp_path: Path):
    arch = trusting(local_gateway, tmp_path)
    video = arch.store_video(RUN_ID, done.video_url)
    poster = arch.store_poster(RUN_ID, video)
    assert poster == tmp_path / "posters" / f"{RUN_ID}.jpg"
    from PIL import Image

    with Image.open(poster) as img:
        assert img.format == "JPEG" and img.size == (320, 320)


def test_poster_from_gateway_thumbnail(local_gateway, done: Task, tmp_path: Path):
    assert done.thumbnail_url, "the local gateway reports a thumbnail"
    arch = trusting(local_gateway, tmp_path)
    video = arch.store_video(RUN_ID, done.video_url)
    poster = arch.store_poster(RUN_ID, video, done.thumbnail_url)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"


def test_expired_link_is_reported_as_expired(local_gateway, done: Task, tmp_path: Path):
    local_gateway.control("expire", task_id=done.id)
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path).store_video(RUN_ID, done.video_url)
    assert info.value.code == "expired" and not info.value.retryable
    assert "Re-run" in info.value.message
    assert not (tmp_path / "videos" / f"{RUN_ID}.mp4").exists()


def test_size_cap(local_gateway, done: Task, tmp_path: Path):
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path, max_bytes=1000).store_video(RUN_ID, done.video_url)
    assert info.value.code == "too_large" and "limit" in info.value.message
    assert not (tmp_path / "videos" / f"{RUN_ID}.mp4").exists()
    assert not list(tmp_path.rglob(".part-*"))  # the partial download was removed


def test_wrong_content_type_is_refused(local_gateway, tmp_path: Path):
    # the control surface's info answers 200 with JSON: not a video
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path).store_video(RUN_ID, local_gateway.url + "/__control/info")
    assert info.value.code == "bad_type" and "MP4" in info.value.message
    assert not (tmp_path / "videos" / f"{RUN_ID}.mp4").exists()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:video/mp4;base64,AAAA", "ftp://x/y.mp4", "", "/rel"]
)
def test_only_http_urls_are_fetched(tmp_path: Path, url: str):
    with pytest.raises(ArchiveError) as info:
        Archive(tmp_path).store_video(RUN_ID, url)
    assert info.value.code == "bad_url"


def test_unreachable_host_is_a_retryable_network_error(tmp_path: Path):
    closed = "http://127.0.0.1:9"  # trusted as if it were the gateway, so the connection is really tried
    fetcher = SafeFetcher(FetchPolicy(trusted=(closed,)), connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(ArchiveError) as info:
        Archive(tmp_path, fetcher=fetcher).store_video(RUN_ID, closed + "/v.mp4")
    assert info.value.code == "network" and info.value.retryable


def test_unwritable_folder_is_a_disk_error_in_words(local_gateway, done: Task, tmp_path: Path):
    (tmp_path / "videos").write_text("a file where the folder should be")
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path).store_video(RUN_ID, done.video_url)
    assert info.value.code == "disk" and info.value.retryable
    assert "Could not save the video" in info.value.message


@pytest.mark.parametrize("bad", ["../../etc/passwd", "short", "a/b/c/d/e/f", "x" * 65, "run id with spaces"])
def test_run_ids_cannot_escape_the_folder(tmp_path: Path, bad: str):
    with pytest.raises(ValueError):
        Archive(tmp_path).store_video(bad, "http://127.0.0.1:9/v.mp4")


def test_uploads_are_named_by_content(tmp_path: Path):
    arch = Archive(tmp_path)
    a = arch.store_upload(b"\xff\xd8\xffimage-bytes", ".JPG")
    assert a.parent == tmp_path / "uploads" and a.suffix == ".jpg" and len(a.stem) == 64
    assert arch.store_upload(b"\xff\xd8\xffimage-bytes", "jpg") == a
    with pytest.raises(ValueError):
        arch.store_upload(b"x", "/../../x")


def test_public_url_is_same_origin_static(tmp_path: Path):
    arch = Archive(tmp_path)
    assert arch.public_url(tmp_path / "videos" / f"{RUN_ID}.mp4") == f"/app/static/videos/{RUN_ID}.mp4"
    assert arch.public_url(f"posters/{RUN_ID}.jpg") == f"/app/static/posters/{RUN_ID}.jpg"
    with pytest.raises(ValueError):
        arch.public_url("/etc/passwd")
    with pytest.raises(ValueError):
        arch.public_url("../outside.mp4")
