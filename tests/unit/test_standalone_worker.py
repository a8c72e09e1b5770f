"""The standalone worker (`python -m lib.worker`) beside a web process run with PLAYGROUND_WORKER=off,
on one SQLite ledger and one local gateway process, all real processes.

The promises: the page still creates runs, and says in words that no worker is running while runs wait
and none is; the standalone worker sends them; after `kill -9` of the web process and the worker mid-run,
starting only a worker finishes every run, each submitted once and archived once, with no page opened;
SIGTERM stops the worker cleanly (exit 0, heartbeat gone, its leases released).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lib.heartbeat import NO_WORKER_WORDS
from lib.ledger import Ledger
from tests.fixtures.press import open_compose, press_many
from tests.fixtures.servers import AppServer, GatewayProcess
from tests.fixtures.st_socket import run_async

ROOT = Path(__file__).resolve().parents[2]
RUNS = 5


def wait_for(what: str, pred: Callable[[], Any], timeout: float, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lib.worker", "--threads", "2"], cwd=ROOT,
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[GatewayProcess, AppServer]]:
    gateway = GatewayProcess(tmp_path / "gateway", speed=2.0).start()
    app = AppServer(tmp_path / "app", gateway,
                    extra_env={"PLAYGROUND_WORKER": "off", "PLAYGROUND_DATA": str(tmp_path / "app")})
    yield gateway, app
    app.stop()
    gateway.stop()


def runs(db: Path) -> list[Any]:
    led = Ledger(f"sqlite:///{db}")
    try:
        return led.list_runs(limit=100)
    finally:
        led.close()


def test_runs_survive_kill_9_of_everything_and_finish_with_only_a_worker(site, tmp_path: Path) -> None:
    gateway, app = site
    app.start()
    # the page creates runs with no worker anywhere, and after a while says so in words
    first = run_async(press_many(app.url, [f"a paper boat on a pond, take {i}" for i in range(RUNS)]))
    assert len(runs(app.db_path)) == RUNS, first
    assert gateway.requests("submit") == []
    time.sleep(11)  # longer than the notice's grace (10 s)

    async def look() -> list[str]:
        session = await open_compose(app.url)
        try:
            return await session.run()
        finally:
            await session.close()

    assert any(NO_WORKER_WORDS in t for t in run_async(look()))
    worker = WorkerProcess(app.env(), tmp_path / "worker1.log")
    try:
        wait_for("every run sent", lambda: len(gateway.requests("submit")) >= RUNS, 90)
        wait_for("no run mid-submit", lambda: all(r.task_id for r in runs(app.db_path)), 30)
        assert not all(r.video_path for r in runs(app.db_path))  # mid-run: not everything is archived
    finally:
        worker.kill()
        app.kill()
    second = WorkerProcess(app.env(), tmp_path / "worker2.log")  # no page is opened from here on
    try:
        done = wait_for("every run archived", lambda: (rs := runs(app.db_path)) and all(
            r.video_path for r in rs) and rs, 180)
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(60) == 0, second.text()[-3000:]
    assert len(done) == RUNS and {r.state for r in done} == {"completed"}
    assert len(gateway.requests("submit")) == RUNS                      # nothing sent twice
    videos = sorted((tmp_path / "app" / "archive" / "videos").glob("*.mp4"))
    assert len(videos) == RUNS and {f"videos/{v.name}" for v in videos} == {r.video_path for r in done}
    assert "stopped cleanly" in second.text()


def test_sigterm_stops_the_worker_cleanly(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gateway", speed=20.0).start()
    db = tmp_path / "ledger.db"
    env = {k: v for k, v in AppServer(tmp_path, gateway).env().items()}
    env.update({"PLAYGROUND_DB_URL": f"sqlite:///{db}", "PLAYGROUND_DATA": str(tmp_path)})
    try:
        worker = WorkerProcess(env, tmp_path / "worker.log")
        led = wait_for("the ledger", lambda: db.exists() and Ledger(f"sqlite:///{db}"), 60)
        try:
            wait_for("a heartbeat", lambda: _count(led, "SELECT count(*) FROM workers") == 1, 60)
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(60) == 0, worker.text()[-3000:]
            assert _count(led, "SELECT count(*) FROM workers") == 0
            assert _count(led, "SELECT count(*) FROM runs WHERE lease_owner IS NOT NULL") == 0
        finally:
            led.close()
        assert "SIGTERM: finishing the steps in flight" in worker.text()
        assert "local-playground" not in worker.text()  # the bearer token is never logged
    finally:
        gateway.stop()


def _count(led: Ledger, sql: str) -> int:
    with led.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())
