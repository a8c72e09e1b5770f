"""The archive in object storage, in headless Debian Chromium: two app replicas on one SeaweedFS bucket.

Replica one (`streamlit run app.py` with PLAYGROUND_ARCHIVE=s3://…) makes a run on Compose; its video
must play on the card from the app's own `/archive/videos/<token>.mp4` (time advances, a seek lands:
HTTP Range through the route to the bucket), and the object must be in the bucket, not on local disk.
Replica two (another process on the same ledger and bucket, with nothing on its disk) opens the share
link in a fresh browser context, with no cookies: the same video plays from replica two's origin.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from lib.storage import S3Location
from tests.e2e.test_archive_e2e import PLAY, TOKEN_SRC, _played
from tests.fixtures.seaweed import Seaweed
from tests.fixtures.servers import (
    DESKTOP,
    ROOT,
    AppServer,
    GatewayProcess,
    open_app,
    read_ledger_rows,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

PROMPT = "A lighthouse in fog, kept in a bucket"


@pytest.fixture
def location(seaweed: Seaweed) -> S3Location:
    return seaweed.location()


@pytest.fixture
def replicas(tmp_path: Path, gateway_process: GatewayProcess, seaweed: Seaweed,
             location: S3Location) -> Iterator[tuple[AppServer, AppServer]]:
    env = seaweed.env(location)
    one = AppServer(tmp_path / "one", gateway_process, extra_env=env)
    two = AppServer(tmp_path / "two", gateway_process,
                    extra_env={**env, "PLAYGROUND_DB_URL": f"sqlite:///{one.db_path}"})
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: CI time is tight
            list(pool.map(AppServer.start, (one, two)))
        yield one, two
    finally:
        two.stop()
        one.stop()


def test_a_video_in_the_bucket_plays_on_the_card_and_from_another_replica(
        replicas: tuple[AppServer, AppServer], browser: Any, page: Any, seaweed: Seaweed,
        location: S3Location) -> None:
    one, two = replicas
    open_app(page, one.url)
    box = page.locator(".st-key-compose_prompt textarea")
    box.fill(PROMPT)
    box.press("Tab")  # a text area commits its value on blur: press once the page has it, as a person does
    wait_for_app(page)
    page.locator(".st-key-compose_generate button").click()
    deadline = time.monotonic() + 30
    while not (runs := read_ledger_rows(one.db_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runs, "no run in the ledger 30 s after Generate"
    run_id = runs[0]["run_id"]
    video = page.locator(f".st-key-card_{run_id} video")
    expect(video).to_have_attribute("src", re.compile(re.escape(one.url) + TOKEN_SRC), timeout=120_000)
    src = video.get_attribute("src") or ""
    path = src.removeprefix(one.url)
    row = read_ledger_rows(one.db_path)[0]
    assert path == f"/archive/{row['video_path']}"
    head = seaweed.client().head_object(Bucket=location.bucket, Key=f"{location.prefix}/{row['video_path']}")
    poster = seaweed.client().head_object(Bucket=location.bucket,
                                          Key=f"{location.prefix}/{row['poster_path']}")
    assert head["ContentLength"] > 1000 and poster["ContentLength"] > 100
    assert not (ROOT / "data" / "archive" / row["video_path"]).exists()
    assert not (one.data_dir / "archive" / row["video_path"]).exists()
    _played(video.evaluate(PLAY))

    # the share link, opened on the other replica in a fresh context (no cookies, no session)
    fresh = browser.new_context(viewport=DESKTOP)
    try:
        shared = fresh.new_page()
        open_app(shared, f"{two.url}/run?id={run_id}")
        sv = shared.locator(".st-key-share_run video")
        expect(sv).to_have_attribute("src", two.url + path, timeout=30_000)
        _played(sv.evaluate(PLAY))
    finally:
        fresh.close()

    # both origins answer the same bytes, with the same validators and Range
    a = requests.get(one.url + path, headers={"Range": "bytes=100-199"}, timeout=10)
    b = requests.get(two.url + path, headers={"Range": "bytes=100-199"}, timeout=10)
    assert a.status_code == b.status_code == 206 and a.content == b.content and len(a.content) == 100
    assert a.headers["etag"] == b.headers["etag"]
    assert a.headers["content-range"] == f"bytes 100-199/{head['ContentLength']}"
