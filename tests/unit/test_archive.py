"""The archive (lib/archive.py): real downloads from the local gateway into a real folder."""
from __future__ import annotations

import re
import time
from pathlib import Path

import av
import pytest

from lib.archive import Archive, ArchiveError
from lib.contract import VideoRequest
from lib.gateway import GatewayClient, Task
from lib.safe_fetch import FetchPolicy, SafeFetcher

RUN_ID = "run_abcdefgh12"
TOKEN_NAME = re.compile(r"^(videos|posters)/[A-Za-z0-9_-]{24}\.(mp4|jpg)$")


def _kept(root: Path) -> list[Path]:
    """Every file the archive holds under videos/ (the gateway's own data is elsewhere in tmp_path)."""
    return list((root / "videos").glob("*")) if (root / "videos").is_dir() else []


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


def test_store_video_gets_its_own_token_and_is_a_playable_mp4(local_gateway, done: Task, tmp_path: Path):
    arch = trusting(local_gateway, tmp_path)
    key = arch.store_video(RUN_ID, done.video_url)
    assert TOKEN_NAME.match(key) and key.startswith("videos/") and RUN_ID not in key
    path = arch.resolve(key)
    assert path.parent == tmp_path / "videos"
    with av.open(str(path)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (720, 720)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".part-")]  # no temp file left


def test_every_file_has_a_token_unrelated_to_the_run_and_to_each_other(local_gateway, done: Task,
                                                                       tmp_path: Path):
    """A direct video URL must not lead to the run (its share view) or to another run's files."""
    keys = []
    for run_id in ("group_aaaaaaaa-1", "group_aaaaaaaa-2"):  # grid cells: ids that follow each other
        arch = trusting(local_gateway, tmp_path)
        video = arch.store_video(run_id, done.video_url)
        keys += [video, arch.store_poster(run_id, video)]
    names = [k.split("/", 1)[1].rsplit(".", 1)[0] for k in keys]
    assert len(set(names)) == 4 and not any("group" in n or "aaaa" in n for n in names)


def test_a_retry_after_a_stored_video_reuses_it_instead_of_a_second_copy(local_gateway, done: Task,
                                                                         tmp_path: Path):
    """The worker retries the whole step when the poster (or the ledger write) fails after the video was
    saved: the saved video is reused, not downloaded again under a new token."""
    arch = trusting(local_gateway, tmp_path)
    first = arch.store_video(RUN_ID, done.video_url)
    # the gateway logs an exchange once it has ended, a moment after the client has its bytes: wait for
    # the first download's entry, and give a second one the same moment before counting
    deadline = time.monotonic() + 5
    while not local_gateway.requests("file") and time.monotonic() < deadline:
        time.sleep(0.02)
    downloads = len(local_gateway.requests("file"))
    assert downloads == 1
    assert arch.store_video(RUN_ID, done.video_url) == first
    time.sleep(0.3)
    assert len(local_gateway.requests("file")) == downloads
    assert len(list((tmp_path / "videos").iterdir())) == 1
    arch.resolve(first).unlink()  # gone (deleted by hand): a retry downloads it again
    again = arch.store_video(RUN_ID, done.video_url)
    assert again != first and arch.exists(again)


def test_poster_from_frame_zero_is_a_320px_jpeg(local_gateway, done: Task, tmp_path: Path):
    arch = trusting(local_gateway, tmp_path)
    video = arch.store_video(RUN_ID, done.video_url)
    poster = arch.store_poster(RUN_ID, video)
    assert TOKEN_NAME.match(poster) and poster.startswith("posters/")
    from PIL import Image

    with Image.open(arch.resolve(poster)) as img:
        assert img.format == "JPEG" and img.size == (320, 320)


def test_poster_from_gateway_thumbnail(local_gateway, done: Task, tmp_path: Path):
    assert done.thumbnail_url, "the local gateway reports a thumbnail"
    arch = trusting(local_gateway, tmp_path)
    video = arch.store_video(RUN_ID, done.video_url)
    poster = arch.store_poster(RUN_ID, video, done.thumbnail_url)
    assert arch.resolve(poster).read_bytes()[:3] == b"\xff\xd8\xff"


def test_expired_link_is_reported_as_expired(local_gateway, done: Task, tmp_path: Path):
    local_gateway.control("expire", task_id=done.id)
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path).store_video(RUN_ID, done.video_url)
    assert info.value.code == "expired" and not info.value.retryable
    assert "Re-run" in info.value.message
    assert not _kept(tmp_path)


def test_size_cap(local_gateway, done: Task, tmp_path: Path):
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path, max_bytes=1000).store_video(RUN_ID, done.video_url)
    assert info.value.code == "too_large" and "limit" in info.value.message
    assert not _kept(tmp_path)
    assert not list(tmp_path.rglob(".part-*"))  # the partial download was removed


def test_wrong_content_type_is_refused(local_gateway, tmp_path: Path):
    # the control surface's info answers 200 with JSON: not a video
    with pytest.raises(ArchiveError) as info:
        trusting(local_gateway, tmp_path).store_video(RUN_ID, local_gateway.url + "/__control/info")
    assert info.value.code == "bad_type" and "MP4" in info.value.message
    assert not _kept(tmp_path)


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


def test_public_url_is_the_archive_route(tmp_path: Path):
    arch = Archive(tmp_path)
    assert arch.public_url(tmp_path / "videos" / f"{RUN_ID}.mp4") == f"/archive/videos/{RUN_ID}.mp4"
    assert arch.public_url(f"posters/{RUN_ID}.jpg") == f"/archive/posters/{RUN_ID}.jpg"
    for bad in ("/etc/passwd", "../outside.mp4", "uploads/abc.png", "videos/.part-x.mp4", "ledger.db"):
        with pytest.raises(ValueError):
            arch.public_url(bad)


def test_the_size_cap_is_never_above_what_the_route_serves(tmp_path: Path):
    from lib import archive_route, storage

    assert Archive(tmp_path).max_bytes == storage.MAX_FILE_BYTES
    assert Archive(tmp_path, max_bytes=10 * storage.MAX_FILE_BYTES).max_bytes == storage.MAX_FILE_BYTES
    assert archive_route.make_routes.__kwdefaults__["max_bytes"] == storage.MAX_FILE_BYTES
