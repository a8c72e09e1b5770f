"""The archive in object storage (lib/storage.S3Bucket) against a real S3 server: SeaweedFS.

One `weed server -s3` serves the whole session (tests/fixtures/seaweed.py); each test keeps its files
under a fresh prefix of one bucket. The faults are real too: a bucket that does not exist, a key the
server does not know, a read-only key, and an S3 front (`weed s3`) stopped in the middle of a test and
started again. What the user reads is checked word for word where it matters, and no credential may
appear in it, in the log or in a repr.
"""
from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

import pytest

from lib import ledger as L
from lib.archive import Archive, ArchiveError
from lib.config import load_settings
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.storage import FileTooLarge, S3Bucket, Storage, StoreUnavailable, open_storage
from tests.fixtures.seaweed import BUCKET, READER, Seaweed
from tests.unit.test_worker import FAST, Rig, note

pytestmark = pytest.mark.timeout(180)

VIDEO = "videos/Zx8_k2-QmR4vT7wYb1nC3dE5.mp4"
POSTER = "posters/Zx8_k2-QmR4vT7wYb1nC3dE5.jpg"


def test_a_bucket_is_a_storage_and_the_settings_pick_it(seaweed: Seaweed) -> None:
    loc = seaweed.location("team/archive")
    settings = load_settings(seaweed.env(loc))
    store = open_storage(settings.archive_location)
    assert isinstance(store, S3Bucket) and isinstance(store, Storage)
    assert store.location == loc
    assert seaweed.secret_key not in repr(store) + repr(settings) + str(settings)
    store.check()


def test_put_stat_ranges_delete_under_the_prefix(seaweed: Seaweed) -> None:
    store = seaweed.bucket()
    data = os.urandom(600_000)  # more than two read chunks
    assert store.put(VIDEO, [data[:1000], data[1000:]]) == len(data)
    stat = store.stat(VIDEO)
    assert stat is not None and stat.size == len(data) and stat.mtime > 0
    assert store.exists(VIDEO) and store.size(VIDEO) == len(data)
    assert b"".join(store.read(VIDEO)) == data
    assert b"".join(store.read(VIDEO, 10, 20)) == data[10:20]
    assert b"".join(store.read(VIDEO, 599_990)) == data[599_990:]
    assert b"".join(store.read(VIDEO, 5, 5)) == b""
    assert b"".join(store.read(VIDEO, 700_000)) == b""  # past the end: nothing, not an error
    # the object sits under the prefix, with the type the key says
    head = seaweed.client().head_object(Bucket=store.location.bucket,
                                        Key=f"{store.location.prefix}/{VIDEO}")
    assert head["ContentLength"] == len(data) and head["ContentType"] == "video/mp4"
    assert store.delete(VIDEO) and not store.delete(VIDEO)
    assert store.stat(VIDEO) is None and not store.exists(VIDEO)
    with pytest.raises(FileNotFoundError):
        store.size(VIDEO)
    with pytest.raises(FileNotFoundError):
        store.read(VIDEO)


def test_past_the_cap_nothing_is_sent(seaweed: Seaweed) -> None:
    store = seaweed.bucket()
    with pytest.raises(FileTooLarge):
        store.put(VIDEO, [b"x" * 600, b"x" * 600], max_bytes=1000)
    assert not store.exists(VIDEO)
    assert store.put(VIDEO, [b"x" * 1000], max_bytes=1000) == 1000


@pytest.mark.parametrize("key", ["../videos/x.mp4", "/videos/x.mp4", "videos/../../x.mp4", "videos/.hidden",
                                 "videos\\x.mp4", "videos//x.mp4", "", "a/b/c/d/e", "videos/%2e%2e"])
def test_keys_that_escape_are_refused_before_the_store(seaweed: Seaweed, key: str) -> None:
    store = seaweed.bucket()
    for call in (lambda: store.put(key, [b"x"]), lambda: store.stat(key), lambda: store.read(key),
                 lambda: store.delete(key)):
        with pytest.raises(ValueError):
            call()


def test_local_file_is_a_bounded_temporary_download(seaweed: Seaweed) -> None:
    store = seaweed.bucket()
    store.put(VIDEO, [b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000])
    before = set(os.listdir(tempfile.gettempdir()))
    with store.local_file(VIDEO) as path:
        assert path.read_bytes()[4:8] == b"ftyp" and path.stat().st_size == 5012
        kept = path
    assert not kept.exists()
    with pytest.raises(FileTooLarge), store.local_file(VIDEO, max_bytes=5000):
        pass
    with pytest.raises(FileNotFoundError), store.local_file(POSTER):
        pass
    assert set(os.listdir(tempfile.gettempdir())) - before == set()  # no temp file left behind


def test_two_replicas_on_one_bucket_see_each_others_files(seaweed: Seaweed) -> None:
    """Two processes' backends (own clients) on one location: what one writes, the other reads."""
    loc = seaweed.location()
    one, two = S3Bucket(loc), S3Bucket(loc)
    one.put(POSTER, [b"\xff\xd8\xff poster"])
    assert two.stat(POSTER) == one.stat(POSTER)  # same size and date: the same ETag on every replica
    assert b"".join(two.read(POSTER, 3)) == b" poster"


# ----------------------------------------------------------------------------------------------- faults


def test_a_missing_bucket_is_said_in_words(seaweed: Seaweed) -> None:
    store = seaweed.bucket(bucket="no-such-bucket")
    with pytest.raises(StoreUnavailable) as err:
        store.put(VIDEO, [b"x"])
    assert err.value.words == ("the archive's bucket does not exist (check the bucket named in "
                               "PLAYGROUND_ARCHIVE)")
    assert store.stat(VIDEO) is None  # S3 answers a HEAD in a missing bucket with a bare 404
    with pytest.raises(StoreUnavailable, match="does not exist"):
        store.check()


@pytest.mark.parametrize("keys", [("playground-tests", "a-wrong-secret-123"), ("stranger", "whatever-secret"),
                                  READER])
def test_refused_credentials_are_said_without_the_secret(seaweed: Seaweed, keys: tuple[str, str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    if keys[0] == "playground-tests":
        keys = (seaweed.access_key, keys[1])
    good = seaweed.bucket()
    good.put(VIDEO, [b"0123456789"])
    store = S3Bucket(seaweed.location(good.location.prefix, keys=keys))
    caplog.set_level(logging.DEBUG)  # botocore and urllib3 too
    with pytest.raises(StoreUnavailable) as err:
        store.put(POSTER, [b"x"])
    assert err.value.words == ("the object store refused the archive's access key (check AWS_ACCESS_KEY_ID, "
                               "AWS_SECRET_ACCESS_KEY and the key's rights on the bucket)")
    if keys == READER:  # a read-only key still reads
        assert b"".join(store.read(VIDEO, 2, 5)) == b"234"
    else:
        with pytest.raises(StoreUnavailable, match="refused the archive's access key"):
            store.stat(VIDEO)
    shown = err.value.words + caplog.text + repr(store)
    assert keys[1] not in shown and seaweed.secret_key not in shown


def test_a_store_that_stops_mid_test_is_said_and_nothing_is_lost(seaweed: Seaweed) -> None:
    gateway = seaweed.gateway()
    store = seaweed.bucket(endpoint=gateway.url, attempts=1)
    store.put(VIDEO, [b"kept before the outage"])
    gateway.stop()
    with pytest.raises(StoreUnavailable) as err:
        store.put(POSTER, [b"x"])
    assert err.value.words == ("the archive's object store did not answer (check that it runs and "
                               "PLAYGROUND_S3_ENDPOINT)")
    assert "127.0.0.1" not in err.value.words and store.location.bucket not in err.value.words
    with pytest.raises(StoreUnavailable):
        store.stat(VIDEO)
    with pytest.raises(StoreUnavailable):
        store.read(VIDEO)
    gateway.start()  # same port, same data
    assert b"".join(store.read(VIDEO)) == b"kept before the outage"
    store.put(POSTER, [b"after"])
    assert store.exists(POSTER)


# ------------------------------------------------------------------------------------ archive + worker


def test_the_archiver_words_a_store_failure_as_retryable(seaweed: Seaweed, local_gateway) -> None:
    store = seaweed.bucket(bucket="no-such-bucket")
    archive = Archive(Path("unused"), storage=store,
                      fetcher=SafeFetcher(FetchPolicy.for_gateway(local_gateway.url)))
    with pytest.raises(ArchiveError) as err:
        archive.store_upload(b"\x89PNG frame", ".png")
    assert err.value.retryable and err.value.message == (
        "Saving the upload failed: the archive's bucket does not exist (check the bucket named in "
        "PLAYGROUND_ARCHIVE). The run is kept and saving is retried automatically.")


FAULT_WORDS = {
    "stopped": "the archive's object store did not answer (check that it runs and PLAYGROUND_S3_ENDPOINT)",
    "no-bucket": "the archive's bucket does not exist (check the bucket named in PLAYGROUND_ARCHIVE)",
    "read-only-key": "the object store refused the archive's access key (check AWS_ACCESS_KEY_ID, "
                     "AWS_SECRET_ACCESS_KEY and the key's rights on the bucket)",
}


@pytest.mark.parametrize("fault", list(FAULT_WORDS))
def test_the_worker_retries_archiving_until_the_store_is_fixed(seaweed: Seaweed, local_gateway, sqlite_ledger,
                                                               tmp_path: Path, fault: str) -> None:
    """The store fails when the video is ready (stopped / no bucket / a key that may not write): the
    card's note says so in words, the run stays completed (not failed), and once the cause is fixed the
    same run is archived into the bucket, with a poster made from its first frame (local_file → PyAV)."""
    local_gateway.control("config", speed=FAST)
    gateway = seaweed.gateway() if fault == "stopped" else None
    fixed = seaweed.bucket(endpoint=gateway.url if gateway else None, attempts=1,
                           bucket=f"late-{secrets.token_hex(4)}" if fault == "no-bucket" else BUCKET)
    broken = S3Bucket(seaweed.location(fixed.location.prefix, bucket=fixed.location.bucket,
                                       endpoint=fixed.location.endpoint_url,
                                       keys=READER if fault == "read-only-key" else None), attempts=1)
    rig = Rig(local_gateway, sqlite_ledger, tmp_path / "unused", archive_retry=0.5)
    rig.archive.storage = broken
    if gateway is not None:
        gateway.stop()
    try:
        rig.worker.start()
        run_id = rig.add(aspect_ratio="1:1")
        noted = rig.until(run_id, lambda r: r.state == L.COMPLETED and bool(note(r)), timeout=60)
        words = note(noted) or ""
        assert words.startswith(f"Saving the video failed: {FAULT_WORDS[fault]}. The run is kept and saving "
                                "is retried automatically. Next try in "), words
        assert noted.video_path is None and noted.error_code is None  # kept, not failed
        if fault == "stopped":
            gateway.start()
        elif fault == "no-bucket":
            seaweed.client().create_bucket(Bucket=fixed.location.bucket)
        else:  # the owner fixes the key (a restart with the right settings: the ledger keeps the run)
            rig.archive.storage = fixed
        run = rig.archived(run_id, timeout=60)
        assert note(run) is None and run.poster_path
        with fixed.local_file(run.video_path) as path:
            assert path.read_bytes()[4:8] == b"ftyp"
        assert b"".join(fixed.read(run.poster_path, 0, 3)) == b"\xff\xd8\xff"
        assert len(rig.submits()) == 1
    finally:
        rig.worker.stop()


def test_a_seen_object_costs_one_head_and_a_deleted_one_is_not_served(seaweed: Seaweed) -> None:
    """Tokens name one object for good, so each process HEADs it once (a video's many Range requests and
    every card's "is it there" ask the remembered answer); an object deleted by another process is then
    a FileNotFoundError on read, never stale bytes."""
    loc = seaweed.location()
    one, two = S3Bucket(loc), S3Bucket(loc)
    heads: list[str] = []
    one.client.meta.events.register("before-call.s3.HeadObject", lambda **kw: heads.append("head"))
    two.put(VIDEO, [b"0123456789"])
    for _ in range(5):
        assert one.stat(VIDEO) is not None and one.exists(VIDEO)
    assert len(heads) == 1
    assert two.delete(VIDEO)
    assert one.stat(VIDEO) is not None  # remembered
    with pytest.raises(FileNotFoundError):
        one.read(VIDEO, 0, 4)
    one.put(VIDEO, [b"new"])  # a write by this process forgets what it knew
    assert one.size(VIDEO) == 3 and len(heads) == 2
