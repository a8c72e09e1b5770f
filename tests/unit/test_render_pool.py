"""The local gateway renders several videos at once, each task by one thread, each file once.

Why: one render thread made a burst of 300 short runs wait ~20 minutes for their MP4s (bench figure 6).
The pool must not trade that for a task rendered twice at once (two threads writing one file).
"""
from __future__ import annotations

import threading
import time

import av
import pytest
import requests

from lib.local_gateway import LocalGateway
from lib.local_gateway.engine import RenderQueue, default_render_workers

SUBMIT = "/v1/videos/generations"


def _blocking_job(started: list[str], release: threading.Event, lock: threading.Lock):
    def job(task_id: str, stop: threading.Event) -> None:
        with lock:
            started.append(task_id)
        release.wait(10)
    return job


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_two_workers_render_two_tasks_at_once_and_the_third_waits():
    started: list[str] = []
    release, lock = threading.Event(), threading.Lock()
    queue = RenderQueue(_blocking_job(started, release, lock), workers=2)
    try:
        for task in ("a", "b", "c"):
            queue.enqueue(task)
        _until(lambda: len(started) == 2)
        time.sleep(0.2)
        assert started == ["a", "b"], "two at once, in acceptance order; the third waits for a free thread"
        assert len(queue) == 3
        assert not queue.wait("a", 0.05), "a render in progress is not finished"
        release.set()
        assert all(queue.wait(task, 10) for task in ("a", "b", "c"))
        assert started == ["a", "b", "c"] and len(queue) == 0
    finally:
        release.set()
        queue.stop()


def test_a_task_queued_again_while_it_renders_is_not_rendered_twice_at_once():
    started: list[str] = []
    release, lock = threading.Event(), threading.Lock()
    queue = RenderQueue(_blocking_job(started, release, lock), workers=3)
    try:
        queue.enqueue("a")
        _until(lambda: started == ["a"])
        for _ in range(5):
            queue.enqueue("a")
            queue.enqueue("a", urgent=True)
        time.sleep(0.3)
        assert started == ["a"], "the other threads must not pick up the task being rendered"
        release.set()
        assert queue.wait("a", 10)
        assert started == ["a"]
    finally:
        release.set()
        queue.stop()


def test_the_pool_needs_a_worker_and_defaults_to_two_at_most():
    with pytest.raises(ValueError):
        RenderQueue(lambda task_id, stop: None, workers=0)
    assert 1 <= default_render_workers() <= 2


def test_stop_ends_every_render_thread():
    queue = RenderQueue(lambda task_id, stop: None, workers=3)
    queue.stop(timeout=5)
    assert not any(t.is_alive() for t in queue._threads)


def test_a_burst_on_a_pooled_gateway_gives_every_task_its_own_real_mp4(tmp_path):
    """Real HTTP, real renders: five tasks at once on two render threads, with and without sound."""
    gw = LocalGateway(tmp_path / "gw", speed=40, render_workers=2).start()
    headers = {"Authorization": "Bearer pool-key"}
    try:
        assert requests.get(gw.url + "/__control/info", timeout=10).json()["render_workers"] == 2
        config = requests.post(gw.url + "/__control/config", json={"contract": "latest"}, timeout=10)
        config.raise_for_status()
        ids = []
        for i in range(5):  # the gateway's limit is 5 submits per second per key
            body = {"model": "kling-v3", "prompt": f"pool burst {i}", "duration": 5,
                    "audio": i % 2 == 0}
            resp = requests.post(gw.url + SUBMIT, json=body, headers=headers, timeout=10)
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["id"])
        deadline = time.monotonic() + 120
        done: dict[str, dict] = {}
        while len(done) < len(ids):
            assert time.monotonic() < deadline, f"only {len(done)} of {len(ids)} completed"
            for task_id in ids:
                if task_id not in done:
                    body = requests.get(f"{gw.url}{SUBMIT}/{task_id}", headers=headers, timeout=10).json()
                    assert body["status"] != "failed", body
                    if body["status"] == "completed":
                        done[task_id] = body
            time.sleep(0.1)
        for i, task_id in enumerate(ids):
            video = requests.get(done[task_id]["result"]["data"][0]["url"], timeout=30)
            poster = requests.get(done[task_id]["result"]["data"][0]["thumbnail_url"], timeout=30)
            assert video.status_code == 200 and poster.status_code == 200
            assert poster.content[:3] == b"\xff\xd8\xff", "the poster is a JPEG"
            path = tmp_path / "gw" / "videos" / f"{task_id}.mp4"
            with av.open(str(path)) as container:
                assert len(container.streams.video) == 1
                assert len(container.streams.audio) == (1 if i % 2 == 0 else 0), "sound only when asked"
                assert sum(1 for _ in container.decode(container.streams.video[0])) == 5 * 24
    finally:
        gw.stop()
