"""A team set-up: several app processes on one PostgreSQL ledger, one gateway.

Two worker *processes* (each its own engine, lease owner and rate limiter, like two app replicas) share
50 runs. The promise: every run is submitted once, polled by one worker at a time, archived once. The
gateway's request log is the judge for submits and downloads; each worker process also records the time
span of every status call it makes, so overlapping polls of one task by both workers would show. Then two
real `streamlit run` servers on one PostgreSQL show the same run in History.

Needs PostgreSQL: the `postgres_url` fixture (tests/fixtures/ledger.py) starts Debian's server on
loopback, or skips when it cannot.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from lib import ledger as L
from lib.contract import VideoRequest
from lib.ledger import Ledger
from lib.schedule import FLOOR
from tests.fixtures.servers import ROOT, AppServer, GatewayProcess, open_app, screenshot

pytestmark = pytest.mark.postgres

N_RUNS = 50
WORKERS = 2

# One worker process: a real Worker on the shared ledger; it records (kind, id, start, end) of each
# gateway/archive call it makes, and exits once every run is archived (or at its deadline).
WORKER_SCRIPT = textwrap.dedent("""
    import json, sys, threading, time
    from pathlib import Path
    from lib.archive import Archive
    from lib.gateway import GatewayClient
    from lib.ledger import Ledger
    from lib.ratelimit import RateLimiter
    from lib.safe_fetch import FetchPolicy, SafeFetcher
    from lib.worker import Worker

    db_url, gw_url, root, owner, out, n_runs, limit = sys.argv[1:8]
    led = Ledger(db_url)
    client = GatewayClient(gw_url, "team-key", limiter=RateLimiter())
    archive = Archive(Path(root), fetcher=SafeFetcher(FetchPolicy.for_gateway(gw_url)))
    calls, lock = [], threading.Lock()

    def recorded(kind, fn):
        def call(key, *args):
            t0 = time.time()
            try:
                return fn(key, *args)
            finally:
                with lock:
                    calls.append([kind, key, t0, time.time()])
        return call

    client.get_task = recorded("poll", client.get_task)
    archive.store_video = recorded("store", archive.store_video)
    worker = Worker(led, client, archive, owner=owner, first_look=0.3, threads=4)
    worker.start()
    deadline = time.monotonic() + float(limit)
    while time.monotonic() < deadline:
        runs = led.list_runs(limit=int(n_runs) + 10)
        if len(runs) >= int(n_runs) and all(r.video_path for r in runs):
            break
        time.sleep(0.3)
    worker.stop()
    Path(out).write_text(json.dumps({"owner": owner, "calls": calls, "stats": worker.stats}))
""")


def _req(i: int) -> VideoRequest:
    return VideoRequest(prompt=f"team clip {i}: a paper plane over rooftops", mode="std", duration=5,
                        aspect_ratio="1:1")


def test_two_worker_processes_share_fifty_runs_without_double_work(
    postgres_url: str, local_gateway: Any, tmp_path: Path
) -> None:
    local_gateway.control("config", speed=5)  # ~3 s per task: several polls each, room for a clash
    led = Ledger(postgres_url)
    try:
        run_ids = []
        for i in range(N_RUNS):
            run_id = Ledger.new_id()
            led.create_run(run_id, _req(i), 0.18)
            run_ids.append(run_id)
        root = tmp_path / "archive"
        procs, outs = [], []
        for w in range(WORKERS):
            out = tmp_path / f"worker{w}.json"
            outs.append(out)
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, postgres_url, local_gateway.url, str(root), f"w{w}",
                 str(out), str(N_RUNS), "150"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        logs = []
        for proc in procs:
            try:
                logs.append(proc.communicate(timeout=200)[0].decode(errors="replace"))
            except subprocess.TimeoutExpired:
                proc.kill()
                logs.append(proc.communicate()[0].decode(errors="replace"))
            assert proc.returncode == 0, logs[-1][-3000:]
        reports = [json.loads(o.read_text()) for o in outs]
        runs = {r.run_id: r for r in led.list_runs(limit=N_RUNS + 10)}
    finally:
        led.close()

    # every run finished and was archived, into one shared folder
    assert set(runs) == set(run_ids)
    not_done = [r for r in runs.values() if r.state != L.COMPLETED or not r.video_path]
    assert not not_done, [(r.state, r.error_message) for r in not_done][:5]
    assert all((root / r.video_path).is_file() for r in runs.values())

    # submitted once each: 50 accepted POSTs, 50 distinct tasks, each task belongs to exactly one run
    accepted = [e for e in local_gateway.requests("submit") if e["status"] == 200]
    assert len(accepted) == N_RUNS
    task_ids = [e["task_id"] for e in accepted]
    assert len(set(task_ids)) == N_RUNS
    assert sorted(task_ids) == sorted(r.task_id for r in runs.values())

    # archived once each: one store per run across both processes, one MP4 download per task
    stores = Counter(c[1] for rep in reports for c in rep["calls"] if c[0] == "store")
    assert stores == Counter({run_id: 1 for run_id in run_ids})
    downloads = Counter(e["path"].rsplit("/", 1)[-1].removesuffix(".mp4")
                        for e in local_gateway.requests("file") if "/videos/" in e["path"])
    assert downloads == Counter({t: 1 for t in task_ids})

    # both workers did real work (the claim is shared, not one process idling)
    for rep in reports:
        assert any(c[0] == "store" for c in rep["calls"]), f"{rep['owner']} archived nothing"

    # polled by one worker at a time: no two status calls for one task overlap across the processes
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for rep in reports:
        for kind, task_id, t0, t1 in rep["calls"]:
            if kind == "poll":
                spans[task_id].append((t0, t1, rep["owner"]))
    for task_id, calls in spans.items():
        calls.sort()
        for (_a0, a1, who_a), (b0, _b1, who_b) in itertools.pairwise(calls):
            assert b0 >= a1, f"task {task_id} polled by {who_a} and {who_b} at once"
    # ... and the gateway saw exactly those GETs (nobody else polled), never closer than the floor
    gets: dict[str, list[float]] = defaultdict(list)
    for e in local_gateway.requests("query"):
        if e.get("task_id"):
            gets[e["task_id"]].append(e["t"])
    assert {t: len(v) for t, v in gets.items()} == {t: len(v) for t, v in spans.items()}
    for task_id, times in gets.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert not gaps or min(gaps) >= FLOOR - 0.1, (task_id, gaps)


@pytest.mark.e2e
def test_two_app_servers_on_one_postgres_show_the_same_run(
    postgres_url: str, tmp_path: Path, browser: Any
) -> None:
    gateway = GatewayProcess(tmp_path / "gateway", speed=20).start()
    servers: list[AppServer] = []
    try:
        for name in ("a", "b"):
            servers.append(AppServer(tmp_path / name, gateway,
                                     {"PLAYGROUND_DB_URL": postgres_url}).start())
        a, b = servers
        word = f"teamwork{int(time.time()) % 100000}"
        prompt = f"A {word} kite over a harbour at noon"
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        open_app(page, a.url)
        page.get_by_label("Prompt", exact=True).fill(prompt)
        page.get_by_role("button", name="Generate").click()

        led = Ledger(postgres_url)
        try:
            deadline = time.monotonic() + 90
            run = None
            while time.monotonic() < deadline:
                runs = led.list_runs(limit=5)
                run = runs[0] if runs else None
                if run is not None and run.video_path:
                    break
                time.sleep(0.3)
            assert run is not None and run.video_path, run
            assert run.request.prompt == prompt
        finally:
            led.close()

        for server in (a, b):  # both servers' History finds it
            open_app(page, f"{server.url}/history")
            search = page.get_by_label("Search runs")
            search.fill(word)
            search.press("Enter")
            page.wait_for_timeout(300)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
            caption = page.locator(".st-key-hist_toolbar")
            caption.get_by_text("1 run", exact=True).wait_for(timeout=15_000)
        screenshot(page, "shared_pg_history_b")
        ctx.close()

        # one submit, although two servers' workers watch the ledger
        assert len([e for e in gateway.requests("submit") if e["status"] == 200]) == 1
    finally:
        for server in servers:
            server.stop()
        gateway.stop()
