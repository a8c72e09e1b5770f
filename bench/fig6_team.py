"""Figure 6: one rate limit for every process on one API key (3 web processes + 2 standalone workers).

Set-up, all real processes on this machine: a local gateway process enforcing ToAPIs' limits per key
(5 submits/s, 50 queries/s, 429 with Retry-After beyond them); one shared ledger; three `streamlit run
app.py` web processes with PLAYGROUND_WORKER=off and two `python -m lib.worker` workers. Twenty sessions
(Streamlit websocket sessions, tests/fixtures/press.py: each press sets the prompt and triggers the real
Generate button), spread over the three web processes, press `runs` times in all, as fast as the pages
answer, all at once. Then every run is followed until it is archived (or a deadline).

Value: the gateway's 429 answers with PLAYGROUND_RATE_LIMIT=shared (lib/shared_limit.py). Baseline, in
the same run, the same load with PLAYGROUND_RATE_LIMIT=process (one in-memory limiter per process).
Each leg uses its own API key (the gateway limits per key) and its own fresh ledger. Also counted per
leg: accepted submits per run (a double submit would show as more accepted submits than runs), archived
files per run, video downloads per run, the busiest second the gateway saw, and how long pressing took.

    python -m bench.fig6_team [--runs 300 --sessions 20 --speed 8 --db sqlite|postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, wait_until
from lib.ledger import Ledger
from tests.fixtures.press import open_compose, press
from tests.fixtures.servers import AppServer, GatewayProcess

log = logging.getLogger(__name__)

WEB = 3
WORKERS = 2


def peak_per_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _press_all(urls: list[str], sessions: int, runs: int, tag: str) -> tuple[float, int]:
    """`sessions` sessions over `urls`, `runs` presses in all (distinct prompts); (seconds, presses)."""
    opened = await asyncio.gather(*(open_compose(urls[s % len(urls)]) for s in range(sessions)))
    share = [runs // sessions + (1 if s < runs % sessions else 0) for s in range(sessions)]

    async def one(s: int) -> int:
        for i in range(share[s]):
            await press(opened[s], f"{tag} session {s}: a lighthouse in fog, take {i}")
        return share[s]

    started = time.monotonic()
    done = sum(await asyncio.gather(*(one(s) for s in range(sessions))))
    seconds = time.monotonic() - started
    await asyncio.gather(*(s.close() for s in opened))
    return seconds, done


def _leg(root: Path, gateway: GatewayProcess, kind: str, *, runs: int, sessions: int, db_url: str,
         deadline: float) -> dict[str, Any]:
    key = f"bench-{kind}-key"
    data = root / kind
    data.mkdir(parents=True)
    env_extra = {"PLAYGROUND_WORKER": "off", "PLAYGROUND_RATE_LIMIT": kind, "TOAPIS_API_KEY": key,
                 "PLAYGROUND_DATA": str(data), "PLAYGROUND_DB_URL": db_url}
    Ledger(db_url).close()  # migrated once before five processes open it
    webs = [AppServer(data / f"web{i}", gateway, extra_env=env_extra) for i in range(WEB)]
    workers: list[subprocess.Popen] = []
    t0 = time.time()
    try:
        for w in webs:
            w.start()
        env = webs[0].env()
        for i in range(WORKERS):
            with (data / f"worker{i}.log").open("ab") as out:
                workers.append(subprocess.Popen([sys.executable, "-m", "lib.worker"], cwd=ROOT, env=env,
                                                stdout=out, stderr=subprocess.STDOUT))
        t0 = time.time()
        seconds, pressed = asyncio.run(_press_all([w.url for w in webs], sessions, runs, kind))
        led = Ledger(db_url)
        try:
            def settled() -> bool:
                rs = led.list_runs(limit=runs + 50)
                return len(rs) >= pressed and all(r.video_path or r.error_code for r in rs)

            finished = wait_until(settled, deadline, step=2.0)
            elapsed = time.time() - t0
            rs = led.list_runs(limit=runs + 50)
        finally:
            led.close()
    finally:
        for p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        for w in webs:
            w.stop()
    log_rows = [r for r in gateway.requests() if r["t"] >= t0]
    # the gateway's log does not name keys; each leg runs alone, so its window is its own
    submits = [r for r in log_rows if r["category"] == "submit"]
    queries = [r for r in log_rows if r["category"] == "query"]
    files = [r for r in log_rows if r["category"] == "file" and r["path"].endswith(".mp4")]
    videos = list((data / "archive" / "videos").glob("*.mp4"))
    by_task: dict[str, int] = {}
    for f in files:
        by_task[f["path"]] = by_task.get(f["path"], 0) + 1
    return {
        "limiter": kind, "runs_pressed": pressed, "pressing_seconds": round(seconds, 1),
        "runs_in_ledger": len(rs), "archived": sum(1 for r in rs if r.video_path),
        "errors": sorted({r.error_code for r in rs if r.error_code}),
        "all_finished": finished, "seconds_to_all_archived": round(elapsed, 1),
        "submit_429": sum(1 for r in submits if r["status"] == 429),
        "query_429": sum(1 for r in queries if r["status"] == 429),
        "accepted_submits": sum(1 for r in submits if r["status"] == 200),
        "distinct_task_ids": len({r.task_id for r in rs if r.task_id}),
        "archive_files": len(videos), "video_downloads": len(files),
        "videos_downloaded_twice": sum(1 for n in by_task.values() if n > 1),
        "busiest_second": {"submit": peak_per_window([r["t"] for r in submits if r["status"] != 429]),
                           "query": peak_per_window([r["t"] for r in queries if r["status"] != 429])},
    }


def _postgres() -> tuple[Any, Any]:
    """A PostgreSQL started the way the tests start one (tests/fixtures/ledger.py): (server, databases)."""
    from tests.fixtures.ledger import PgServer, _find_pg_bindir, _LocalPg

    bindir = _find_pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (install Debian's postgresql)")
    local = _LocalPg(bindir)
    return local, PgServer(local.start())


def run(tiny: bool = False, *, runs: int = 300, sessions: int = 20, speed: float = 8.0,
        db: str = "sqlite", deadline: float | None = None) -> list[Row]:
    if tiny:
        runs, sessions = 12, 4
    legs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_fig6_") as d:
        root = Path(d)
        gateway = GatewayProcess(root / "gateway", speed=speed).start()
        gateway.control("config", balance=100_000)  # two legs of runs must not run out of credit
        local, pg = _postgres() if db == "postgres" else (None, None)
        try:
            for kind in ("shared", "process"):
                url = pg.new_database() if pg is not None else f"sqlite:///{root / kind / 'ledger.db'}"
                legs.append(_leg(root, gateway, kind, runs=runs, sessions=sessions, db_url=url,
                                 deadline=deadline or runs * 1.5 + 300))
                time.sleep(2.0)  # the gateway's one-second windows empty between legs
        finally:
            gateway.stop()
            if local is not None:
                local.stop()
    shared, per_process = legs
    limited = shared["submit_429"] + shared["query_429"]
    baseline = per_process["submit_429"] + per_process["query_429"]
    ok = (limited == 0 and shared["all_finished"] and shared["accepted_submits"] == shared["runs_pressed"]
          and shared["archive_files"] == shared["runs_pressed"])
    return [Row("6", f"gateway 429s, {WEB} web + {WORKERS} workers, {shared['runs_pressed']} runs "
                     f"from {sessions} sessions", float(limited), float(baseline), "count", "0", ok,
                baseline_name="per-process limiters", notes={"shared": shared, "per_process": per_process,
                                                             "db": db, "gateway_speed": speed})]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--speed", type=float, default=8.0)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--deadline", type=float, help="seconds per leg to wait for every run to be archived "
                    "(default runs x 1.5 + 300; the gateway renders one video at a time)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rows = run(args.tiny, runs=args.runs, sessions=args.sessions, speed=args.speed, db=args.db,
               deadline=args.deadline)
    out = json.dumps([r.__dict__ for r in rows], indent=2, default=str)
    print(out)
    if args.json:
        args.json.write_text(out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
